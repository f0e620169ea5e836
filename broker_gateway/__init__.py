"""The edge to NATS: server config rendering, JWT push and lookup, and (later) the fleet."""
