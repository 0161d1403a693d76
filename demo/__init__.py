"""The Berth demo: a local control plane with fake GPU nodes, and what runs on it."""
