"""Image prefetch DaemonSets: which image, on which nodes, owned by whom, asking for what."""

from __future__ import annotations

from berth_operator.config import OperatorConfig
from berth_operator.controller.prefetch import (
    prefetch_owners,
    prefetch_targets,
    render_prefetch,
)
from berth_operator.controller.workload import ServedModel, render_deployment

from tests.unit.factories import md

ON = OperatorConfig(image_prefetch=True)
SERVED = ServedModel(revision="main", resolved_revision=None, model_bytes=None)
TOLERATION = {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
NODE_AFFINITY = {
    "requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
        ]
    }
}


def pod_spec(manifest: dict) -> dict:
    return manifest["spec"]["template"]["spec"]


def test_nothing_is_prefetched_unless_the_chart_turns_it_on():
    assert prefetch_targets(md(), OperatorConfig(), None) == []


def test_the_image_is_the_one_the_pods_run_and_kept_where_they_could_run():
    resource = md(
        engine="vllm",
        resources={"gpus": 1},
        scheduling={
            "nodeSelector": {"pool": "h100"},
            "tolerations": [TOLERATION],
            "affinity": {"nodeAffinity": NODE_AFFINITY, "podAntiAffinity": {"x": 1}},
            "priorityClassName": "high",
        },
    )
    [target] = prefetch_targets(resource, ON, None)
    server = pod_spec(render_deployment(resource, ON, SERVED))
    daemon = pod_spec(render_prefetch(target, "ns", prefetch_owners(None, resource)))

    assert daemon["containers"][0]["image"] == server["containers"][0]["image"]
    # the pods' GPU request sends them to GPU nodes: the DaemonSet says so with their label
    assert daemon["nodeSelector"] == {"pool": "h100", "nvidia.com/gpu.present": "true"}
    assert daemon["tolerations"] == server["tolerations"]
    # node affinity only: the pods' affinity to other pods or their priority mean nothing here
    assert daemon["affinity"] == {"nodeAffinity": NODE_AFFINITY}
    assert "priorityClassName" not in daemon


def test_the_prefetch_pod_sleeps_with_no_gpu_and_almost_nothing_else():
    [target] = prefetch_targets(md(engine="vllm", resources={"gpus": 2}), ON, None)
    spec = pod_spec(render_prefetch(target, "ns", []))
    [container] = spec["containers"]
    assert container["command"] == ["sleep", "infinity"]
    assert "nvidia.com/gpu" not in str(container["resources"])
    assert container["resources"]["requests"] == {"cpu": "1m", "memory": "8Mi"}
    assert {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"} in container["env"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["automountServiceAccountToken"] is False


def test_a_cpu_model_is_kept_on_the_nodes_its_own_selection_names():
    cpu = {"gpus": 0}
    [target] = prefetch_targets(
        md(resources=cpu, scheduling={"nodeSelector": {"pool": "cpu"}}), ON, None
    )
    assert pod_spec(render_prefetch(target, "ns", []))["nodeSelector"] == {"pool": "cpu"}
    [anywhere] = prefetch_targets(md(resources=cpu), ON, None)
    assert "nodeSelector" not in pod_spec(render_prefetch(anywhere, "ns", []))


def test_one_daemonset_per_image_and_placement():
    same = [prefetch_targets(md(name=n, repo=f"org/{n}"), ON, None)[0] for n in ("a", "b")]
    assert same[0].name == same[1].name  # the model does not matter, only image and nodes
    other_image = prefetch_targets(md(image="registry.local/pyannote:1"), ON, None)[0]
    other_nodes = prefetch_targets(md(scheduling={"nodeSelector": {"pool": "x"}}), ON, None)[0]
    assert len({same[0].name, other_image.name, other_nodes.name}) == 3
    assert other_image.image == "registry.local/pyannote:1"


def test_a_model_waiting_for_an_engine_upgrade_prefetches_the_image_it_will_move_to():
    targets = prefetch_targets(md(engine="pyannote"), ON, "registry.local/pyannote:old")
    assert [t.image for t in targets] == ["registry.local/pyannote:old", ON.images["pyannote"]]


def test_the_resources_using_one_daemonset_own_it_together():
    first, second = md(name="a"), md(name="b")
    owners = prefetch_owners(None, first)
    assert [(r["name"], r["controller"]) for r in owners] == [("a", False)]
    [target] = prefetch_targets(first, ON, None)
    existing = render_prefetch(target, "ns", owners)
    both = prefetch_owners(existing, second)
    assert [r["name"] for r in both] == ["a", "b"]
    # joining again changes nothing: the same list, so nothing is written at rest
    assert prefetch_owners(render_prefetch(target, "ns", both), first) == both
