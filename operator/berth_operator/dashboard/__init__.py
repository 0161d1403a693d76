"""The read-only dashboard: a GPU panel and a card per ModelDeployment, live over server-sent events."""
