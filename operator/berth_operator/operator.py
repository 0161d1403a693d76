"""Wires the controller into kopf: watches feed the store, a work queue runs the reconcile."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import time
from collections import Counter as Tally
from collections.abc import Hashable, Mapping
from typing import Any

import kopf

from berth_operator.api.metadata import (
    GROUP,
    JOB_NAME_LABEL,
    KIND,
    MANAGED_BY,
    MODEL_DEPLOYMENT_LABEL,
    PLURAL,
    VERSION,
)
from berth_operator.config import OperatorConfig
from berth_operator.controller.reconciler import Reconciler
from berth_operator.dashboard.server import Dashboard
from berth_operator.kube import FIELD_MANAGER, RESOURCES, Kube, ModelDeploymentResource
from berth_operator.leases import LeaderElection
from berth_operator.metrics import OperatorMetrics
from berth_operator.store import Store
from berth_operator.workqueue import WorkQueue

logger = logging.getLogger(__name__)

# Child kinds the operator watches (only objects labelled as managed by Berth).
CHILDREN: list[tuple[str, str, str, str]] = [
    ("batch", "v1", "jobs", "Job"),
    ("apps", "v1", "deployments", "Deployment"),
    ("apps", "v1", "daemonsets", "DaemonSet"),
    ("", "v1", "pods", "Pod"),
    ("", "v1", "services", "Service"),
    ("", "v1", "serviceaccounts", "ServiceAccount"),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
]


def _resource(kind: str) -> Any:
    return next(res for (_, k), res in RESOURCES.items() if k == kind)


def _copy_json(value: Any) -> Any:
    """A deep copy of parsed JSON (dicts, lists, scalars): several times faster than
    copy.deepcopy, which the watch events of a thousand resources made a tenth of the CPU."""
    if isinstance(value, Mapping):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_json(item) for item in value]
    return value


def plain(body: Any) -> dict[str, Any]:
    """A deep, mutable copy of a kopf body, without managedFields (large, and never read)."""
    metadata = {k: v for k, v in body.get("metadata", {}).items() if k != "managedFields"}
    return _copy_json({**body, "metadata": metadata})


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff-base at all: only change handlers compare an object with its last handled state,
    and Berth has none; kopf would otherwise deep-copy every event's body to build one."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


class Operator:
    """The running operator: store, queue, workers, metrics; kopf handlers call into it."""

    def __init__(
        self, config: OperatorConfig, kube: Kube | None = None, dashboard: Dashboard | None = None
    ) -> None:
        self.config = config
        self.store = Store()
        self.queue = WorkQueue()
        self.metrics = OperatorMetrics()
        self.kube = kube or Kube(on_write=self.metrics.api_writes.inc)
        self.reconciler = Reconciler(
            self.store, self.kube, config, self.queue.add, self.queue.add_after
        )
        self._tasks: list[asyncio.Task[None]] = []
        self.dashboard = dashboard
        #: set while this replica may reconcile (always, without leader election)
        self.leading = asyncio.Event()
        self.election: LeaderElection | None = None

    # ---- events -------------------------------------------------------------------------

    def on_model_deployment(self, event_type: str | None, body: Any) -> None:
        meta = body["metadata"]
        if event_type == "DELETED":
            self.store.remove(KIND, meta["namespace"], meta["name"])
        else:
            self.store.upsert(KIND, plain(body))
        self.queue.add((meta["namespace"], meta["name"]))
        for rival in self.reconciler.track(meta["namespace"], meta["name"]):
            self.queue.add(rival)
        if self.dashboard is not None:
            current = self.store.get(KIND, meta["namespace"], meta["name"])
            self.dashboard.changed(current, f"{meta['namespace']}/{meta['name']}")

    def on_child(self, kind: str, event_type: str | None, body: Any) -> None:
        meta = body["metadata"]
        if event_type == "DELETED":
            self.store.remove(kind, meta["namespace"], meta["name"])
        else:
            self.store.upsert(kind, plain(body))
        for owner in self.owners_of(kind, body):
            self.queue.add(owner)
        if kind == "Pod" and self.dashboard is not None:
            self.dashboard.refresh_gpus()

    def on_node(self, event_type: str | None, body: Any) -> None:
        """Nodes are watched for the dashboard's GPU panel only; no reconcile depends on them."""
        if event_type == "DELETED":
            self.store.remove("Node", "", body["metadata"]["name"])
        else:
            node = plain(body)
            node.get("status", {}).pop("images", None)  # large, and never read
            self.store.upsert("Node", node)
        if self.dashboard is not None:
            self.dashboard.refresh_gpus()

    def owners_of(self, kind: str, body: Any) -> list[tuple[str, str]]:
        """The ModelDeployments a child event concerns."""
        meta = body["metadata"]
        ns = meta["namespace"]
        labels = meta.get("labels") or {}
        owners = {
            ref["name"] for ref in meta.get("ownerReferences") or [] if ref.get("kind") == KIND
        }
        if name := labels.get(MODEL_DEPLOYMENT_LABEL):
            owners.add(name)
        if kind == "Pod" and (job_name := labels.get(JOB_NAME_LABEL)):
            job = self.store.get("Job", ns, job_name)
            refs = (job or {}).get("metadata", {}).get("ownerReferences") or []
            owners |= {ref["name"] for ref in refs if ref.get("kind") == KIND}
        return [(ns, name) for name in sorted(owners)]

    # ---- work ---------------------------------------------------------------------------

    async def handle(self, key: Hashable) -> None:
        await self.leading.wait()
        namespace, name = key  # type: ignore[misc]
        started = time.perf_counter()
        try:
            await self.reconciler.reconcile(namespace, name)
        except Exception:
            self.metrics.reconciles.labels(result="error").inc()
            raise
        finally:
            self.metrics.reconcile_seconds.observe(time.perf_counter() - started)
            self.metrics.queue_depth.set(len(self.queue))
        self.metrics.reconciles.labels(result="ok").inc()

    async def resync_forever(self) -> None:
        """Re-queues every resource now and then, so drift is noticed without any event."""
        while True:
            await asyncio.sleep(self.config.resync_seconds)
            await self.reconciler.find_api_server()  # a control plane may move
            for key in self.store.keys(KIND):
                self.queue.add(key)

    async def count_phases_forever(self) -> None:
        while True:
            tally = Tally(
                (body.get("status") or {}).get("phase") or "Unknown"
                for body in self.model_deployments()
            )
            self.metrics.by_phase.clear()
            for phase, count in tally.items():
                self.metrics.by_phase.labels(phase=phase).set(count)
            await asyncio.sleep(15)

    async def prefill(self, namespaces: list[str]) -> None:
        """Lists every watched kind once, so the first passes see the whole cluster."""
        selector = dict(MANAGED_BY)
        kinds: list[tuple[str, Any, dict[str, str] | None]] = [
            (KIND, ModelDeploymentResource, None)
        ]
        kinds += [(kind, _resource(kind), selector) for *_, kind in CHILDREN]
        for kind, resource, labels in kinds:
            for namespace in namespaces or ["*"]:
                for obj in await self.kube.list(resource, namespace, labels):
                    obj.get("metadata", {}).pop("managedFields", None)
                    self.store.upsert(kind, obj)
        for key in self.store.keys(KIND):
            self.reconciler.track(*key)
            self.queue.add(key)

    def model_deployments(self) -> list[dict[str, Any]]:
        """Every ModelDeployment the operator watches, as last seen."""
        return [body for key in self.store.keys(KIND) if (body := self.store.get(KIND, *key))]

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.queue.run_worker(self.handle)) for _ in range(self.config.workers)
        ]
        self._tasks += [
            loop.create_task(self.resync_forever()),
            loop.create_task(self.count_phases_forever()),
        ]
        if self.config.leader_lease is None:
            self.leading.set()
        else:
            self.election = LeaderElection(
                self.kube.client,
                self.config.lease_namespace,
                self.config.leader_lease,
                replica_identity(),
                self.config.lease_seconds,
                FIELD_MANAGER,
                "reconciles",
            )
            self._tasks += [
                loop.create_task(self.election.run()),
                loop.create_task(self.follow_leadership()),
            ]

    async def follow_leadership(self) -> None:
        """Reconciles only while this replica holds the Lease; on taking it over, every
        resource is looked at again (the store is current: the watches never stopped)."""
        assert self.election is not None
        while True:
            if self.election.leading() and not self.leading.is_set():
                self.leading.set()
                for key in self.store.keys(KIND):
                    self.queue.add(key)
            elif not self.election.leading() and self.leading.is_set():
                logger.warning("this replica lost the Lease: it stops reconciling")
                self.leading.clear()
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        """Stops reconciling, reconciles in flight included, and only then hands the Lease
        over: a reconcile of this replica that finished after a standby took over would write
        with this version's settings over the new leader's (an upgrade's new engine images
        undone, and the next model moved meanwhile)."""
        self.leading.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.election is not None:
            await self.election.release()  # a standby takes over now, not after the Lease


def replica_identity() -> str:
    """This replica's name in the Lease: its pod's, else its host and process."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def in_cluster_login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The pod's service account, at the API server's address as client-go and lightkube take it
    in a pod (KUBERNETES_SERVICE_HOST and _PORT): kopf's own default, kubernetes.default.svc,
    needs cluster DNS, and the operator's two clients must talk to the same server."""
    info = kopf.login_with_service_account(**kwargs)
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    if info is None or not host or not port:
        return info
    return dataclasses.replace(
        info, server=f"https://{f'[{host}]' if ':' in host else host}:{port}"
    )


def build_registry(
    operator: Operator, namespaces: list[str], dashboard_address: tuple[str, int] | None = None
) -> kopf.OperatorRegistry:
    """kopf handlers bound to one Operator; nothing registered globally."""
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Event handlers only: kopf keeps no progress or diff-base on our objects.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = NoDiffBase()
        settings.posting.enabled = False
        settings.watching.server_timeout = 300
        # kopf gives every object a worker that lives `idle_timeout` after its last event; a
        # cap on live workers paced a burst of new objects to `worker_limit` per idle_timeout.
        # The handlers only file the event, so workers are cheap: no cap, short idling.
        settings.queueing.worker_limit = None
        settings.queueing.idle_timeout = 1.0

        await operator.reconciler.find_api_server()
        await operator.prefill(namespaces)
        operator.start()
        if operator.dashboard is not None and dashboard_address:
            await operator.dashboard.start(*dashboard_address)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return in_cluster_login(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await operator.stop()
        if operator.dashboard is not None:
            await operator.dashboard.stop()

    @kopf.on.probe(id="queue", registry=registry)
    def queue_depth(**_: Any) -> int:
        return len(operator.queue)

    # Event handlers are coroutines: kopf runs plain functions in a thread pool, and the store
    # and the work queue belong to the event loop.
    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def model_deployment_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        operator.on_model_deployment(type, body)

    if operator.dashboard is not None:  # the GPU panel is the only reader of Nodes

        @kopf.on.event("", "v1", "nodes", registry=registry)
        async def node_event(type: str | None, body: kopf.Body, **_: Any) -> None:
            operator.on_node(type, body)

    for group, version, plural, kind in CHILDREN:

        async def child_event(
            type: str | None, body: kopf.Body, _kind: str = kind, **_: Any
        ) -> None:
            operator.on_child(_kind, type, body)

        kopf.on.event(
            group or "", version, plural, labels=dict(MANAGED_BY), registry=registry, id=f"{plural}"
        )(child_event)

    return registry
