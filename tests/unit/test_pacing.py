"""Engine image upgrades go one model at a time: the others keep their image until the model
moving has rolled out; a model with spec.image is never moved; 0 moves them all at once."""

from __future__ import annotations

from typing import Any

from berth_operator.api.metadata import COMPONENT_LABEL, MODEL_DEPLOYMENT_LABEL, SERVER_COMPONENT
from berth_operator.config import OperatorConfig
from berth_operator.controller.pacing import ImagePacer, server_image
from berth_operator.controller.resource import ModelDeployment
from berth_operator.controller.status import derive_status
from berth_operator.controller.workload import ServedModel, render_deployment
from berth_operator.store import Store

from tests.unit.factories import observed

OLD, NEW = "registry/berth-pyannote:1", "registry/berth-pyannote:2"
SERVED = ServedModel(revision="main", resolved_revision="abc", model_bytes=1)


def config(rollouts: int = 1) -> OperatorConfig:
    return OperatorConfig.from_env(
        {"BERTH_IMAGES": f'{{"pyannote": "{NEW}"}}', "BERTH_IMAGE_ROLLOUTS": str(rollouts)}
    )


def model(name: str, image: str | None = None) -> ModelDeployment:
    spec: dict[str, Any] = {"engine": "pyannote", "model": {"repo": "org/m"}, "replicas": 2}
    if image:
        spec["image"] = image
    body = {
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "models", "uid": f"uid-{name}", "generation": 1},
        "spec": spec,
    }
    return ModelDeployment.from_body(body)


def deployment(md: ModelDeployment, image: str, rolled_out: bool) -> dict[str, Any]:
    """The model's Deployment on `image`, finished rolling or not."""
    found = render_deployment(md, config(), SERVED, kept_image=image)
    found["metadata"]["generation"] = 2
    ready = 2 if rolled_out else 1
    found["status"] = {
        "observedGeneration": 2,
        "updatedReplicas": ready,
        "availableReplicas": ready,
    }
    return found


class Pacing:
    """A pacer over a store of Deployments, recording what it asked to reconcile again."""

    def __init__(self, rollouts: int = 1) -> None:
        self.store = Store()
        self.requeued: list[tuple[str, str]] = []
        self.pacer = ImagePacer(self.store, config(rollouts), self.requeued.append)

    def on(self, md: ModelDeployment, image: str, rolled_out: bool = True) -> dict[str, Any]:
        self.store.upsert("Deployment", deployment(md, image, rolled_out))
        return self.store.get("Deployment", md.namespace, md.name) or {}

    def pod(self, md: ModelDeployment, name: str, image: str, stopping: bool = False) -> None:
        """A server pod of `md` running `image`, stopping or not."""
        meta: dict[str, Any] = {
            "name": name,
            "namespace": md.namespace,
            "labels": {MODEL_DEPLOYMENT_LABEL: md.name, COMPONENT_LABEL: SERVER_COMPONENT},
        }
        if stopping:
            meta["deletionTimestamp"] = "2026-12-05T00:00:00Z"
        pod = {"metadata": meta, "spec": {"containers": [{"name": "server", "image": image}]}}
        self.store.upsert("Pod", {**pod, "status": {"phase": "Running"}})

    def decide(self, md: ModelDeployment) -> str | None:
        """One reconcile pass: the image kept, and the decision's Deployment applied."""
        current = self.store.get("Deployment", md.namespace, md.name)
        kept = self.pacer.kept_image(md, current)
        image = kept or md.spec.image or NEW
        if current is not None and server_image(current) != image:
            self.on(md, image, rolled_out=False)  # the new template, applied
        self.pacer.applied(md)
        return kept


def test_one_model_moves_at_a_time_and_the_next_follows_when_it_is_rolled_out() -> None:
    pacing = Pacing()
    a, b, c = model("a"), model("b"), model("c")
    for md in (a, b, c):
        pacing.on(md, OLD)
    assert pacing.decide(a) is None  # a moves
    assert pacing.decide(b) == OLD and pacing.decide(c) == OLD  # b and c wait on their image
    assert pacing.requeued == []
    pacing.on(a, NEW, rolled_out=True)  # a's rollout finished: its next pass frees the slot
    assert pacing.decide(a) is None
    assert pacing.requeued == [("models", "b"), ("models", "c")]
    assert pacing.decide(b) is None and pacing.decide(c) == OLD


def test_the_next_model_waits_until_the_old_pods_of_the_one_moving_are_gone() -> None:
    """The Deployment's status counts a stopping pod out at once; it still drains its
    requests and holds its GPU, which the next model's new pod may need."""
    pacing = Pacing()
    a, b = model("a"), model("b")
    pacing.on(a, OLD)
    pacing.on(b, OLD)
    assert pacing.decide(a) is None and pacing.decide(b) == OLD
    pacing.on(a, NEW, rolled_out=True)
    pacing.pod(a, "a-new", NEW)
    pacing.pod(a, "a-old", OLD, stopping=True)
    assert pacing.decide(a) is None and pacing.requeued == []
    assert pacing.decide(b) == OLD
    pacing.store.remove("Pod", "models", "a-old")  # gone: its deletion queues a's pass
    assert pacing.decide(a) is None and pacing.requeued == [("models", "b")]
    assert pacing.decide(b) is None


def test_a_model_whose_new_pods_never_become_ready_holds_the_rest_back() -> None:
    pacing = Pacing()
    a, b = model("a"), model("b")
    pacing.on(a, OLD)
    pacing.on(b, OLD)
    assert pacing.decide(a) is None
    for _ in range(3):  # a never finishes rolling out
        assert pacing.decide(a) is None
        assert pacing.decide(b) == OLD


def test_the_status_says_which_image_a_held_model_waits_for() -> None:
    md = model("b")
    now = "2026-12-05T00:00:00Z"
    assert derive_status(observed(md, kept_image=OLD), config(), now)["pendingImage"] == NEW
    assert derive_status(observed(md), config(), now)["pendingImage"] is None


def test_a_pinned_image_never_moves_and_zero_moves_every_model() -> None:
    pacing = Pacing()
    pinned, a, b = model("pinned", image=OLD), model("a"), model("b")
    for md in (pinned, a, b):
        pacing.on(md, OLD)
    assert pacing.decide(pinned) is None  # renders its own spec.image, not the default
    assert pacing.decide(a) is None and pacing.decide(b) == OLD
    every = Pacing(rollouts=0)
    for md in (a, b):
        every.on(md, OLD)
    assert every.decide(a) is None and every.decide(b) is None


def test_a_new_model_starts_on_the_new_image_whatever_is_moving() -> None:
    pacing = Pacing()
    a, fresh = model("a"), model("fresh")
    pacing.on(a, OLD)
    assert pacing.decide(a) is None
    assert pacing.decide(fresh) is None  # no Deployment yet: nothing to keep
