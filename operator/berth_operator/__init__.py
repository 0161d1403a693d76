"""Berth's Kubernetes operator: the ModelDeployment API and the controller that reconciles it."""
