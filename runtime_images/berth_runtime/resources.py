"""The Kubernetes resource types the runtime talks to."""

from berth_operator.api.metadata import GROUP, KIND, PLURAL, VERSION
from lightkube.generic_resource import create_namespaced_resource

ModelDeployment = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)
