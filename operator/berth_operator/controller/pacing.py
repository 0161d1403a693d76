"""Engine image upgrades at a bounded pace: when a Berth release brings new default engine images,
a few models move at a time (one by default), each by its own rollout rules; the others keep
their image, and say so, until a slot is free. A model whose new pods never become ready holds
the rest back: a bad image stops at the first model. A model with `spec.image` is not moved."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from berth_operator.api.metadata import COMPONENT_LABEL, ENGINE_LABEL, SERVER_COMPONENT
from berth_operator.config import OperatorConfig
from berth_operator.controller.names import Key
from berth_operator.controller.observed import server_pods
from berth_operator.controller.resource import ModelDeployment
from berth_operator.store import Store


def server_image(workload: dict[str, Any]) -> str | None:
    """The image of a model server's container, in a Deployment or a Pod."""
    spec = workload["spec"]
    containers = spec.get("template", {}).get("spec", spec).get("containers") or [{}]
    return containers[0].get("image")


def rolling(deployment: dict[str, Any], pods: list[dict[str, Any]]) -> bool:
    """The Deployment has not finished rolling out its latest template: its status says so, or
    one of its server `pods` still runs another image or is stopping (it holds its GPU until its
    containers have ended, and the Deployment's status no longer counts it). A pod that has
    ended (Succeeded, Failed) holds nothing, even while its object waits for the kubelet."""
    status = deployment.get("status") or {}
    wanted = deployment["spec"].get("replicas", 1)
    image = server_image(deployment)
    return (
        status.get("observedGeneration") != deployment["metadata"].get("generation")
        or (status.get("updatedReplicas") or 0) < wanted
        or (status.get("availableReplicas") or 0) < wanted
        or any(
            pod["metadata"].get("deletionTimestamp") or server_image(pod) != image
            for pod in pods
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        )
    )


@dataclass
class ImagePacer:
    """Decides, per reconcile, whether a model may move to its engine's new default image."""

    store: Store
    config: OperatorConfig
    #: queues a reconcile of a model (those held back, when a slot frees)
    requeue: Callable[[Key], None]
    #: models allowed to move whose new Deployment is not in the store yet
    _starting: set[Key] = field(default_factory=set)
    #: models kept on their image, waiting for a slot
    _held: set[Key] = field(default_factory=set)

    def kept_image(self, md: ModelDeployment, deployment: dict[str, Any] | None) -> str | None:
        """The image `md` keeps for now, or None when it runs (or may move to) the default."""
        key = (md.namespace, md.name)
        current = server_image(deployment) if deployment else None
        target = self.config.images[md.spec.engine]
        if md.spec.image or current is None or current == target or not self.config.image_rollouts:
            self._held.discard(key)
            if self._held and (deployment is None or not self._rolling(deployment)):
                self._release_held()
            return None
        if len(self.moving() - {key}) >= self.config.image_rollouts:
            self._held.add(key)
            return current
        self._held.discard(key)
        self._starting.add(key)
        return None

    def applied(self, md: ModelDeployment) -> None:
        """The pass that decided is over: the store now shows what it applied."""
        self._starting.discard((md.namespace, md.name))

    def moving(self) -> set[Key]:
        """Models rolling onto their engine's default image, or about to."""
        found = set(self._starting)
        for deployment in self.store.objects("Deployment"):
            meta = deployment["metadata"]
            labels = meta.get("labels") or {}
            engine = labels.get(ENGINE_LABEL)
            if (
                labels.get(COMPONENT_LABEL) == SERVER_COMPONENT
                and engine in self.config.images
                and server_image(deployment) == self.config.images[engine]
                and self._rolling(deployment)
            ):
                found.add((meta["namespace"], meta["name"]))
        return found

    def _rolling(self, deployment: dict[str, Any]) -> bool:
        meta = deployment["metadata"]
        return rolling(deployment, server_pods(self.store, meta["namespace"], meta["name"]))

    def _release_held(self) -> None:
        """Every held model looks again (the first to find a slot takes it)."""
        for key in sorted(self._held):
            self.requeue(key)
