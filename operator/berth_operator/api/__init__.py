"""The ModelDeployment API (berth.dev/v1alpha1): typed models, metadata keys, the pod contract.

Nothing is imported here, so that `berth_operator.api.metadata` stays free of dependencies.
"""
