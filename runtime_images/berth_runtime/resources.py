"""The Kubernetes resource types the runtime talks to."""

from lightkube.generic_resource import create_namespaced_resource

ModelDeployment = create_namespaced_resource(
    "berth.dev", "v1alpha1", "ModelDeployment", "modeldeployments"
)
