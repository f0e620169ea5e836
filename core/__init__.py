"""What every app shares: the error type, its HTTP edge, the CLI base, admin bases and database helpers."""
