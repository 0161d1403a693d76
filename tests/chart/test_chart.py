"""The Helm chart: lint, rendered snapshots, strict values, install, upgrade, uninstall."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from berth_operator.api.metadata import AUTOSCALER_LEASE
from berth_operator.config import OperatorConfig

from images import content
from tests.cluster import ControlPlane
from tests.cluster.binaries import pinned_versions
from tests.cluster.helm import helm
from tests.cluster.kubectl import Kubectl
from tests.gateway.parts import GatewayProcess, wait_until
from tests.operator.helpers import phase_is
from tests.operator_process import OperatorProcess, cache_volume_manifest

CHART = Path(__file__).resolve().parents[2] / "charts" / "berth"
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
EXAMPLES = CHART.parents[1] / "examples"
# lint and render for the Kubernetes the tests run (make test-oldest-kubernetes: the oldest)
KUBE_VERSION = pinned_versions()["KUBERNETES_VERSION"].removeprefix("v")

RANDOM_TOKEN = re.compile(
    r"(# Source: berth/templates/dashboard-token.yaml\n(?:.*\n)*?  token: )\S+"
)

# name -> --set values; each is rendered and compared with snapshots/<name>.yaml
RENDERINGS = {
    "defaults": [],
    "namespaced-with-replicas": [
        "watchNamespaces={team-a,team-b}",
        "replicaCount=2",
        "metrics.serviceMonitor.enabled=true",
        "hfEndpoint=https://hf-mirror.internal",
        "cache.storageClassName=fast-rwx",
    ],
    "crds-disabled": ["crds.enabled=false", "metrics.enabled=false"],
}


def render(*sets: str) -> str:
    """helm template, with the dashboard's token (random at each render) as <random>."""
    args = [
        "template",
        "berth",
        str(CHART),
        "--namespace",
        "berth-system",
        "--kube-version",
        KUBE_VERSION,
    ]
    for value in sets:
        args += ["--set", value]
    return RANDOM_TOKEN.sub(r"\1<random>", helm(None, *args).stdout)


def test_lint_is_clean():
    result = helm(None, "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION)
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("name", list(RENDERINGS))
def test_rendering_matches_its_snapshot(name: str):
    rendered = render(*RENDERINGS[name])
    snapshot = SNAPSHOTS / f"{name}.yaml"
    if os.environ.get("BERTH_UPDATE_SNAPSHOTS") == "1":
        snapshot.write_text(rendered)
    assert snapshot.read_text() == rendered, (
        f"helm template changed; review it, then BERTH_UPDATE_SNAPSHOTS=1 pytest {__file__}"
    )


def named(obj: dict, name: str) -> bool:
    return obj["metadata"]["name"] == name


def test_rendered_objects_are_what_the_values_say():
    objects = [o for o in yaml.safe_load_all(render(*RENDERINGS["namespaced-with-replicas"])) if o]
    kinds = sorted(o["kind"] for o in objects)
    # the operator's and the gateway's in each namespace; in the release's: the gateway's
    # Leases and Secrets, the operator's copy of the models' keys, the dashboard's; in
    # `default`, the operator's read of the API server's EndpointSlice; the leader's Lease
    assert kinds.count("Role") == 10
    cluster_roles = [o for o in objects if o["kind"] == "ClusterRole"]
    assert [r["resources"] for c in cluster_roles for r in c["rules"]] == [
        ["customresourcedefinitions"],
        ["nodes"],  # the dashboard's GPU panel
    ]
    operator = [
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "berth"
    ]
    container = operator[0]["spec"]["template"]["spec"]["containers"][0]
    assert "--namespace=team-a" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HF_ENDPOINT"] == "https://hf-mirror.internal"
    # two replicas: one reconciles, elected on the release's Lease
    assert operator[0]["spec"]["replicas"] == 2 and env["BERTH_LEADER_LEASE"] == "berth-leader"
    assert env["BERTH_CACHE_STORAGE_CLASS"] == "fast-rwx"
    crd = next(
        o
        for o in objects
        if o["kind"] == "CustomResourceDefinition" and o["spec"]["group"] == "berth.dev"
    )
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    defaults = [o for o in yaml.safe_load_all(render("crds.enabled=false")) if o]
    assert not [o for o in defaults if o["kind"] == "CustomResourceDefinition"]
    # the dashboard's request figures: the gateway Service's EndpointSlices, listed only
    dashboard = next(o for o in objects if o["kind"] == "Role" and named(o, "berth-dashboard"))
    assert dashboard["metadata"]["namespace"] == "berth-system"
    assert dashboard["rules"] == [
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list"]}
    ]
    assert "--gateway-service=berth-system/berth-gateway" in container["args"]
    no_dashboard = [o for o in yaml.safe_load_all(render("dashboard.enabled=false")) if o]
    rules = [r for o in no_dashboard if o["kind"] == "ClusterRole" for r in o["rules"]]
    assert not [r for r in rules if "nodes" in r["resources"]], "no Node reads without the panel"
    assert not [o for o in no_dashboard if o["kind"] == "Role" and named(o, "berth-dashboard")]


def operator_env(*sets: str) -> dict[str, str | None]:
    objects = [o for o in yaml.safe_load_all(render(*sets)) if o]
    operator = next(o for o in objects if o["kind"] == "Deployment" and named(o, "berth"))
    container = operator["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_image_prefetch_is_off_by_default_and_reaches_the_operator_when_on():
    assert "BERTH_IMAGE_PREFETCH" not in operator_env()
    env = operator_env("imagePrefetch.enabled=true", "imagePrefetch.gpuNodeSelector.pool=gpu")
    config = OperatorConfig.from_env({k: v for k, v in env.items() if v is not None})
    assert config.image_prefetch is True
    assert config.prefetch_gpu_node_selector == {"nvidia.com/gpu.present": "true", "pool": "gpu"}


def test_the_vllm_compile_cache_is_off_by_default_and_reaches_the_operator_when_on():
    assert "BERTH_VLLM_COMPILE_CACHE" not in operator_env()
    env = operator_env("engines.vllmCompileCache=true")
    config = OperatorConfig.from_env({k: v for k, v in env.items() if v is not None})
    assert config.vllm_compile_cache is True


def test_every_pod_runs_what_its_image_holds_without_service_links():
    """The kubelet's Service links would set BERTH_METRICS_PORT=tcp://... (from the Service
    berth-metrics) over the port settings; and a module the chart runs must be in the image."""
    objects = [o for o in yaml.safe_load_all(render()) if o]
    pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] == "Deployment"]
    assert len(pods) == 2
    assert all(pod["enableServiceLinks"] is False for pod in pods)
    dockerfile = CHART.parents[1] / "operator" / "Dockerfile"
    for pod in pods:
        for container in pod["containers"]:
            command = container.get("command") or content.entrypoint(dockerfile)
            module = command[command.index("-m") + 1]
            assert f"COPY operator/{module} /opt/berth/{module}" in dockerfile.read_text(), module


def test_the_gateway_reads_only_what_it_routes_by():
    objects = [o for o in yaml.safe_load_all(render("gateway.keysSecret=client-keys")) if o]
    gateway = [o for o in objects if o["metadata"]["name"].startswith("berth-gateway")]
    assert sorted(o["kind"] for o in gateway) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    rules = {
        (r["apiGroups"][0], r["resources"][0]): (r["verbs"], r.get("resourceNames"))
        for o in gateway
        if o["kind"] in ("Role", "ClusterRole")
        for r in o["rules"]
    }
    assert rules[("berth.dev", "modeldeployments")] == (["get", "list", "watch"], None)
    assert rules[("discovery.k8s.io", "endpointslices")] == (["list", "watch"], None)
    # the autoscaler writes replicas only, and Leases in the release's namespace only
    assert rules[("berth.dev", "modeldeployments/scale")] == (["patch"], None)
    roles = {o["metadata"]["name"]: o for o in gateway if o["kind"] == "Role"}
    secrets = roles["berth-gateway-secrets"]["rules"]
    assert secrets == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["berth-model-keys", "client-keys"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    leases = roles["berth-gateway-leases"]
    assert leases["metadata"]["namespace"] == "berth-system"
    assert [r["resources"] for r in leases["rules"]] == [["leases"]]
    args = next(o for o in gateway if o["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert "--keys-secret=client-keys" in args
    assert "--model-keys-secret=berth-model-keys" in args
    off = [o for o in yaml.safe_load_all(render("gateway.enabled=false")) if o]
    assert not [o for o in off if "gateway" in o["metadata"]["name"]]


def dashboard_token(*sets: str) -> tuple[list[str], dict | None]:
    """(the Secrets rendered for the dashboard, the operator's BERTH_DASHBOARD_TOKEN source)."""
    objects = [o for o in yaml.safe_load_all(render(*sets)) if o]
    secrets = [o["metadata"]["name"] for o in objects if named(o, "berth-dashboard-token")]
    deployment = next(o for o in objects if o["kind"] == "Deployment" and named(o, "berth"))
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    found = [e["valueFrom"]["secretKeyRef"] for e in env if e["name"] == "BERTH_DASHBOARD_TOKEN"]
    return secrets, found[0] if found else None


def test_the_dashboard_needs_a_token_by_default():
    assert dashboard_token() == (
        ["berth-dashboard-token"],
        {"name": "berth-dashboard-token", "key": "token"},
    )
    mine = ("dashboard.tokenSecretRef.name=mine", "dashboard.tokenSecretRef.key=k")
    assert dashboard_token(*mine) == ([], {"name": "mine", "key": "k"})
    assert dashboard_token("dashboard.requireToken=false") == ([], None)
    assert dashboard_token("dashboard.enabled=false") == ([], None)


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("bogus=1", "additional properties 'bogus' not allowed"),
        ("cache.size=lots", "/cache/size"),
        ("workers=0", "/workers"),
        ("logLevel=LOUD", "/logLevel"),
        ("cache.accessModes={ReadWriteAlways}", "/cache/accessModes/0"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("leaseSeconds=1", "/leaseSeconds"),
        ("imagePrefetch.enabled=maybe", "/imagePrefetch/enabled"),
        ("engines.vllmCompileCache=maybe", "/engines/vllmCompileCache"),
    ],
)
def test_bad_values_are_refused_with_the_path(value: str, complaint: str):
    args = ["template", "berth", str(CHART), "--kube-version", KUBE_VERSION, "--set", value]
    result = helm(None, *args, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr


# ---- on a control plane of its own: the chart owns the CRD there ---------------------------


@pytest.fixture(scope="module")
def chart_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with ControlPlane(workdir=tmp_path_factory.mktemp("chart-cluster")) as plane:
        yield plane


def previous_version(tmp_path: Path) -> Path:
    """The chart as a previous release: same templates, an older version."""
    old = tmp_path / "berth-previous"
    shutil.copytree(CHART, old)
    chart = yaml.safe_load((old / "Chart.yaml").read_text())
    chart["version"] = "0.0.9"
    (old / "Chart.yaml").write_text(yaml.safe_dump(chart))
    return old


def test_install_run_upgrade_and_uninstall(chart_cluster: ControlPlane, tmp_path: Path):
    plane = chart_cluster
    helm(
        plane,
        "install",
        "berth",
        str(previous_version(tmp_path)),
        "-n",
        "berth-system",
        "--create-namespace",
        "--wait",
        "--timeout=60s",
    )
    system = Kubectl(plane, "berth-system")
    assert system.get("deployment", "berth")["status"]["readyReplicas"] == 1

    # Run the operator with the chart's ServiceAccount token: its RBAC must be enough.
    token = plane.service_account_token("berth-system", "berth", seconds=3600)
    kubeconfig = plane.write_kubeconfig(tmp_path / "operator.kubeconfig", token, "berth-system")
    chart_env = {  # where the chart's operator copies the models' own keys, and its Lease
        "BERTH_MODEL_KEYS_SECRET": "berth-model-keys",
        "BERTH_MODEL_KEYS_NAMESPACE": "berth-system",
        "BERTH_LEADER_LEASE": "berth-leader",
        "POD_NAMESPACE": "berth-system",
    }
    operator = OperatorProcess(
        plane, tmp_path, extra_env={"KUBECONFIG": str(kubeconfig), **chart_env}
    )
    dashboard_token = system.get("secret", "berth-dashboard-token")["data"]["token"]
    operator.start()
    try:
        plane.kubectl("create", "namespace", "models")
        plane.apply(cache_volume_manifest("chart-cache", "models", "berth-model-cache"))
        models = Kubectl(plane, "models")
        models("create", "secret", "generic", "hf-token", "--from-literal=token=hf_x")
        models("apply", "-f", str(EXAMPLES))
        for name in ("qwen3-vl", "canary", "diarization"):
            models.wait_for("md", name, phase_is("Starting"), timeout=60)
        assert "Forbidden" not in operator.log.read_text(), operator.log_tail()

        result = helm(
            plane,
            "upgrade",
            "berth",
            str(CHART),
            "-n",
            "berth-system",
            "--set",
            "workers=8",
            "--wait",
            "--timeout=60s",
        )
        assert "STATUS: deployed" in result.stdout
        history = helm(plane, "history", "berth", "-n", "berth-system", "-o", "yaml").stdout
        assert [h["chart"] for h in yaml.safe_load(history)] == ["berth-0.0.9", "berth-0.1.0"]
        env = {
            e["name"]: e.get("value")
            for e in system.get("deployment", "berth")["spec"]["template"]["spec"]["containers"][0][
                "env"
            ]
        }
        assert env["BERTH_WORKERS"] == "8"
        assert system.get("secret", "berth-dashboard-token")["data"]["token"] == dashboard_token
        assert models.get("md", "canary")["status"]["phase"] == "Starting"

        # the gateway, with the chart's gateway ServiceAccount token: its RBAC is enough
        token = plane.service_account_token("berth-system", "berth-gateway", seconds=3600)
        kubeconfig = plane.write_kubeconfig(tmp_path / "gateway.kubeconfig", token, "berth-system")
        gateway = GatewayProcess(
            plane, tmp_path, "--lease-namespace=berth-system", kubeconfig=kubeconfig
        )
        try:
            assert {"qwen", "canary", "diarization"} <= set(gateway.models())
            # its Leases: it elects itself to scale, and publishes its load
            wait_until(
                lambda: system("get", "lease", AUTOSCALER_LEASE, check=False).returncode == 0,
                "the autoscaler Lease",
            )
        finally:
            gateway.stop()
        assert "Forbidden" not in gateway.process.log.read_text()

        helm(plane, "uninstall", "berth", "-n", "berth-system", "--wait")
        assert (
            plane.kubectl("get", "crd", "modeldeployments.berth.dev", check=False).returncode == 0
        ), "CRD kept"
        assert models.get("md", "canary")["metadata"]["name"] == "canary", "resources kept"
        assert models.get("pvc", "berth-model-cache")
    finally:
        operator.stop()
