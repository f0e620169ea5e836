"""REST API v1 (grows in the web/API issue)."""
