"""The root of trust: nkeys, NATS JWTs, `.creds`, seed custody, the operator and its signing keys."""
