"""The ModelDeployment API (berth.dev/v1alpha1): typed models, the CRD generated from them."""

from berth_operator.api.modeldeployment import (
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
)

__all__ = [
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
]
