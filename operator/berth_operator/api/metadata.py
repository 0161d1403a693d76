"""Every API coordinate, label and annotation key Berth reads or writes, in one place.

Standard library only: the runtime, the dashboard and the tests import it as well as the operator.
"""

from __future__ import annotations

# ---- the ModelDeployment resource ---------------------------------------------------------

GROUP = "berth.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ["md"]

# ---- labels -------------------------------------------------------------------------------

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = {MANAGED_BY_LABEL: "berth"}
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
MODEL_DEPLOYMENT_LABEL = f"{GROUP}/modeldeployment"
ENGINE_LABEL = f"{GROUP}/engine"
DOWNLOAD_KEY_LABEL = f"{GROUP}/download-key"
#: set by the Job controller on a Job's pods
JOB_NAME_LABEL = "job-name"
#: set on GPU nodes by NVIDIA's GPU feature discovery
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"

SERVER_COMPONENT = "model-server"
DOWNLOAD_COMPONENT = "download"
CACHE_COMPONENT = "model-cache"
PREFETCH_COMPONENT = "image-prefetch"
#: on a prefetch DaemonSet and its pods: which image and placement they hold
PREFETCH_KEY_LABEL = f"{GROUP}/image-prefetch"

# ---- annotations --------------------------------------------------------------------------

#: on a ModelDeployment: a new value asks for a clean re-download
REDOWNLOAD_ANNOTATION = f"{GROUP}/redownload"
#: on the cache claim: why Berth never deletes it
KEEP_ANNOTATION = f"{GROUP}/keep"
#: on the Deployment and its pods: the revision served, its commit and its size in bytes
REVISION_ANNOTATION = f"{GROUP}/revision"
RESOLVED_REVISION_ANNOTATION = f"{GROUP}/resolved-revision"
MODEL_BYTES_ANNOTATION = f"{GROUP}/model-bytes"
#: on a download Job: the downloader's latest progress report (JSON), which the operator copies
#: into status.download of every resource sharing the Job
DOWNLOAD_PROGRESS_ANNOTATION = f"{GROUP}/download-progress"

# ---- the gateway's autoscaler -------------------------------------------------------------

GATEWAY_COMPONENT = "gateway"
#: the component label of each gateway replica's load Lease
GATEWAY_LOAD_COMPONENT = "gateway-load"
#: on a gateway replica's load Lease: its requests in flight and last request time per model
#: (JSON), which the elected replica reads to scale
GATEWAY_LOAD_ANNOTATION = f"{GROUP}/gateway-load"
#: the Lease the gateway replicas elect the one that scales with, in the gateway's namespace
AUTOSCALER_LEASE = "berth-gateway-autoscaler"

# ---- between the gateway and the model servers --------------------------------------------

#: on a model server's answer: it refused the request before handling any of it (the value says
#: why: ServerBusy, ModelNotReady), so the gateway may send it to another replica
UNPROCESSED_HEADER = "Berth-Unprocessed"
