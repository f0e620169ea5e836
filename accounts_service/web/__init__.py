"""Server-rendered web UI of the tenant domain: sign-up, teams, dashboard, API tokens."""
