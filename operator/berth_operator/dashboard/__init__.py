"""The read-only dashboard: a card per ModelDeployment, live over server-sent events."""
