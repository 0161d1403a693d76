"""Berth's gateway: one OpenAI-compatible address for every ModelDeployment, routed by `model`."""
