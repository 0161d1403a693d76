"""The reconcile loop: one function, run for every event, resume and resync of a ModelDeployment."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pydantic
from lightkube.core.exceptions import ApiError

from berth_operator.api.metadata import (
    JOB_NAME_LABEL,
    KIND,
)
from berth_operator.api.modeldeployment import ModelDeploymentStatus
from berth_operator.config import OperatorConfig
from berth_operator.controller.cache import cache_claim_name, render_cache_claim
from berth_operator.controller.desired import desired_children
from berth_operator.controller.diff import contains
from berth_operator.controller.download import (
    DownloadIdentity,
    adapter_downloads,
    download_identity,
    download_owner_references,
)
from berth_operator.controller.events import EventRecorder, EventTarget, transitions
from berth_operator.controller.model_keys import ModelKeys, first_key
from berth_operator.controller.names import Key, ServedNames
from berth_operator.controller.netpol import (
    KIND as POLICY,
)
from berth_operator.controller.netpol import (
    discover_api_server,
    download_policy_name,
    server_policy_name,
)
from berth_operator.controller.observed import DownloadState, Observed, SecretCheck, server_pods
from berth_operator.controller.ownership import NameConflict, controller_of, holder
from berth_operator.controller.pacing import ImagePacer
from berth_operator.controller.pairing import Pairs, partner_name
from berth_operator.controller.podtruth import is_ready, unschedulable
from berth_operator.controller.prefetch import (
    prefetch_owners,
    prefetch_targets,
    render_prefetch,
)
from berth_operator.controller.resource import ModelDeployment
from berth_operator.controller.startup import just_scheduled, pods_to_explain, pull_in_progress
from berth_operator.controller.status import derive_status
from berth_operator.kube import Kube, namespace_terminating
from berth_operator.store import Store

logger = logging.getLogger(__name__)

JOB = ("batch/v1", "Job")
DAEMON_SET = ("apps/v1", "DaemonSet")
CLAIM = ("v1", "PersistentVolumeClaim")
IDENTITY_KINDS = {
    "Role",
    "ServiceAccount",
    "RoleBinding",
    "Service",
    "NetworkPolicy",
    "PodDisruptionBudget",
}
WORKLOAD_KINDS = {"Job", "Deployment"}
#: how soon a pass looks again at a pod creating its containers with no pull in its events
STARTUP_RECHECK_SECONDS = 5.0


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kind_of(manifest: dict[str, Any]) -> str:
    return manifest["kind"]


@dataclass
class Reconciler:
    """Computes desired children from the spec, applies what differs, writes status once."""

    store: Store
    kube: Kube
    config: OperatorConfig
    #: queues a reconcile of another resource
    requeue: Callable[[Key], None] = lambda key: None
    #: queues a reconcile after a delay in seconds
    requeue_after: Callable[[Key, float], None] = lambda key, delay: None
    events: EventRecorder = field(init=False)
    pacer: ImagePacer = field(init=False)
    model_keys: ModelKeys = field(init=False)
    #: how pods reach the API server (for NetworkPolicies), found at start and each resync
    api_server: list[dict[str, Any]] = field(default_factory=list)
    known_claims: set[tuple[str, str]] = field(default_factory=set)
    names: ServedNames = field(default_factory=ServedNames)
    pairs: Pairs = field(default_factory=Pairs)
    _download_locks: defaultdict[tuple[str, str], asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )
    _parsed: dict[Key, tuple[str, ModelDeployment | None, list[DownloadIdentity]]] = field(
        default_factory=dict
    )
    #: (namespace, download Job name) -> names of the resources that need that download
    _by_download: defaultdict[tuple[str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )
    _downloads_of: dict[Key, set[tuple[str, str]]] = field(default_factory=dict)
    #: (namespace, prefetch DaemonSet name): its owners are written by one resource at a time
    _prefetch_locks: defaultdict[tuple[str, str], asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )

    def __post_init__(self) -> None:
        self.events = EventRecorder(self.kube.create)
        self.pacer = ImagePacer(self.store, self.config, self.requeue)
        self.model_keys = ModelKeys(
            self.kube, self.config.model_keys_namespace, self.config.model_keys_secret
        )

    # ---- reading --------------------------------------------------------------------------

    def parsed(self, body: dict[str, Any]) -> tuple[ModelDeployment | None, list[DownloadIdentity]]:
        """The parsed resource and the downloads it needs (its model's first, then its
        adapters'); computed once per resourceVersion."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        version = meta.get("resourceVersion", "")
        cached = self._parsed.get(key)
        if cached is None or cached[0] != version:
            try:
                md: ModelDeployment | None = ModelDeployment.from_body(body)
            except pydantic.ValidationError:
                md = None
            downloads = [download_identity(md), *adapter_downloads(md)] if md else []
            cached = (version, md, downloads)
            self._parsed[key] = cached
        return cached[1], cached[2]

    def track(self, namespace: str, name: str) -> set[Key]:
        """Indexes the stored resource's served model name, download and diarization partner;
        returns the other resources whose name contest or partner changed with it (they need a
        reconcile too)."""
        key = (namespace, name)
        for old in self._downloads_of.pop(key, set()):
            self._by_download[old].discard(name)
            if not self._by_download[old]:
                del self._by_download[old]
        body = self.store.get(KIND, namespace, name)
        if body is None:
            return self.names.remove(key) | self.pairs.set(key, None)
        md, downloads = self.parsed(body)
        self._downloads_of[key] = {(namespace, d.job_name) for d in downloads}
        for job in self._downloads_of[key]:
            self._by_download[job].add(name)
        return self.names.set(key, md) | self.pairs.set(key, md)

    def partner_of(self, md: ModelDeployment) -> ModelDeployment | None:
        """The diarization model an ASR model pairs with, as stored (None: none, or absent)."""
        name = partner_name(md)
        body = self.store.get(KIND, md.namespace, name) if name else None
        return self.parsed(body)[0] if body else None

    def forget(self, namespace: str, name: str) -> None:
        self._parsed.pop((namespace, name), None)
        self.events.forget(namespace, name)

    def sharers_of(self, namespace: str, job_name: str) -> list[ModelDeployment]:
        """Every valid, live ModelDeployment in the namespace that downloads with `job_name`."""
        result = []
        for name in sorted(self._by_download.get((namespace, job_name), ())):
            body = self.store.get(KIND, namespace, name)
            md, downloads = self.parsed(body) if body else (None, [])
            if md and not md.deleting and any(d.job_name == job_name for d in downloads):
                result.append(md)
        return result

    async def _check_secret(
        self, namespace: str, ref: Any, field_path: str
    ) -> tuple[SecretCheck | None, str | None]:
        """A problem with the reference, or the value it points at (base64)."""
        data = await self.kube.secret_data(namespace, ref.name)
        if data is None:
            return SecretCheck(
                "SecretNotFound",
                f"secret {ref.name} not found in namespace {namespace} ({field_path}.name): "
                f"create it, or fix the reference",
            ), None
        if ref.key not in data:
            return SecretCheck(
                "SecretKeyNotFound",
                f"secret {ref.name} has no key '{ref.key}' ({field_path}.key); "
                f"it has: {', '.join(sorted(data)) or 'no keys'}",
            ), None
        return None, data[ref.key]

    async def check_tokens(
        self, md: ModelDeployment, downloads: list[DownloadIdentity]
    ) -> dict[str, SecretCheck]:
        """Problems with the downloads' token Secrets, by download Job name."""
        problems: dict[str, SecretCheck] = {}
        for download in downloads:
            if (ref := download.source.token_secret_ref) is None:
                continue
            own = download.adapter is not None and any(
                a.name == download.adapter and a.token_secret_ref for a in md.spec.adapters
            )
            where = (
                f"spec.vllm.adapters[{download.adapter}].tokenSecretRef"
                if own
                else "spec.model.tokenSecretRef"
            )
            problem, _ = await self._check_secret(md.namespace, ref, where)
            if problem is not None:
                problems[download.job_name] = problem
        return problems

    async def check_secrets(self, md: ModelDeployment) -> list[SecretCheck]:
        """Problems with the Secret references other than tokens; the model's own key is
        copied for the gateway on the way."""
        secret_problems = []
        model_key = None
        if api_key := md.spec.auth.api_key_secret_ref if md.spec.auth else None:
            problem, value = await self._check_secret(
                md.namespace, api_key, "spec.auth.apiKeySecretRef"
            )
            if problem:
                secret_problems.append(problem)
            elif value is not None:
                model_key = first_key(value)
        await self.model_keys.publish(md.namespace, md.name, model_key)
        return secret_problems

    def download_state(
        self, md: ModelDeployment, download: DownloadIdentity, problem: SecretCheck | None
    ) -> DownloadState:
        """One download of `md` as the store holds it."""
        ns, job_name = md.namespace, download.job_name
        sharers = [m for m in self.sharers_of(ns, job_name) if m.uid != md.uid]
        sharers.append(md)
        return DownloadState(
            identity=download,
            sharers=sharers,
            job=self.store.get("Job", ns, job_name),
            role=self.store.get("Role", ns, job_name),
            pods=self.store.by_label("Pod", ns, JOB_NAME_LABEL, job_name),
            token_problem=problem,
        )

    def observe(
        self,
        md: ModelDeployment,
        downloads: list[DownloadIdentity],
        token_problems: dict[str, SecretCheck],
        secret_problems: list[SecretCheck],
        kept_image: str | None = None,
    ) -> Observed:
        """Everything this pass needs from the store."""
        ns = md.namespace
        states = [self.download_state(md, d, token_problems.get(d.job_name)) for d in downloads]
        needed = {d.job_name for d in downloads}
        jobs_of_md = self.store.owned_by("Job", ns, md.uid)
        return Observed(
            md=md,
            download=states[0],
            adapter_downloads={s.identity.adapter: s for s in states[1:] if s.identity.adapter},
            deployment=self.store.get("Deployment", ns, md.name),
            pods=server_pods(self.store, ns, md.name),
            stale_jobs=[j for j in jobs_of_md if j["metadata"]["name"] not in needed],
            secret_problems=secret_problems,
            name_rivals=self.names.rivals(md),
            diarization_partner=self.partner_of(md),
            api_server=self.api_server,
            kept_image=kept_image,
        )

    async def find_api_server(self) -> None:
        """Finds how pods reach the API server, for the NetworkPolicies; keeps what it had
        when the cluster does not say."""
        if not self.config.network_policies:
            return
        try:
            found = await discover_api_server(self.kube, self.config)
        except ApiError as error:
            logger.warning("finding the API server's addresses: %s", error.status.message)
            return
        if not found:
            logger.warning(
                "the API server's addresses are unknown: model servers cannot report their "
                "status; set networkPolicy.apiServerCIDRs"
            )
        self.api_server = found

    # ---- writing --------------------------------------------------------------------------

    async def ensure_cache_claim(self, md: ModelDeployment) -> None:
        """Creates the cache PVC when missing; an existing one is never changed."""
        key = (md.namespace, cache_claim_name(md, self.config))
        if key in self.known_claims:
            return
        if await self.kube.create_if_missing(render_cache_claim(md, self.config)):
            logger.info("created cache claim %s/%s", *key)
        self.known_claims.add(key)

    async def existing(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """The object of the manifest's kind and name: from the store, which holds Berth's own
        objects, else from the API server (an object Berth did not label may hold the name; a
        read before each creation is what keeps Berth from taking it over)."""
        meta = manifest["metadata"]
        kind = kind_of(manifest)
        found = self.store.get(kind, meta["namespace"], meta["name"])
        if found is None:
            found = await self.kube.get(
                (manifest["apiVersion"], kind), meta["namespace"], meta["name"]
            )
        return found

    async def apply_if_changed(
        self, manifest: dict[str, Any], observed: dict[str, Any] | None
    ) -> None:
        """Server-side apply, skipped when the observed object already holds the manifest."""
        if observed is not None and contains(observed, manifest):
            return
        applied = await self.kube.apply(manifest)
        self.store.upsert(kind_of(manifest), applied)

    async def apply_download_job(
        self, manifest: dict[str, Any], observed: dict[str, Any] | None
    ) -> None:
        """The Job's pod template is immutable: when it exists, only its owners are updated."""
        meta = manifest["metadata"]
        if observed is None:
            await self.apply_if_changed(manifest, observed)
        elif not contains(
            observed["metadata"],
            {"ownerReferences": meta["ownerReferences"], "labels": meta["labels"]},
        ):
            await self.kube.merge_patch(
                JOB,
                meta["namespace"],
                meta["name"],
                {
                    "metadata": {
                        "ownerReferences": meta["ownerReferences"],
                        "labels": meta["labels"],
                    }
                },
            )

    async def apply_children(self, observed: Observed) -> list[NameConflict]:
        """Applies in two waves, each concurrently: identities and the Service, then the
        workloads whose pods need those identities. When an object Berth does not control holds
        the name of any child, nothing is written: a pod never runs under an identity Berth does
        not control, and no foreign object gains an owner."""
        children = desired_children(observed, self.config)
        existing = await asyncio.gather(*(self.existing(m) for m in children))
        conflicts = [
            NameConflict(kind_of(m), m["metadata"]["name"], who)
            for m, found in zip(children, existing, strict=True)
            if found is not None and (who := holder(found, m))
        ]
        if conflicts:
            return conflicts
        for wave in (IDENTITY_KINDS, WORKLOAD_KINDS):
            await asyncio.gather(
                *(
                    (self.apply_download_job if kind_of(m) == "Job" else self.apply_if_changed)(
                        m, found
                    )
                    for m, found in zip(children, existing, strict=True)
                    if kind_of(m) in wave
                )
            )
        return []

    async def remove_policies(self, md: ModelDeployment) -> None:
        """NetworkPolicies turned off: the ones Berth made for this resource go."""
        for name in (server_policy_name(md.name), download_policy_name(md.name)):
            found = self.store.get(POLICY, md.namespace, name)
            if found and (controller_of(found) or {}).get("uid") == md.uid:
                await self.kube.delete(("networking.k8s.io/v1", POLICY), md.namespace, name)

    async def release_stale_jobs(self, observed: Observed) -> None:
        """Download Jobs this resource no longer needs: drop it as owner; delete orphans."""
        ns = observed.md.namespace
        for job in observed.stale_jobs:
            name = job["metadata"]["name"]
            still = self.sharers_of(ns, name)
            if still:
                refs = download_owner_references(still)
                await self.kube.merge_patch(JOB, ns, name, {"metadata": {"ownerReferences": refs}})
            else:
                logger.info("deleting download Job %s/%s: no resource needs it", ns, name)
                await self.kube.delete(JOB, ns, name)

    async def sync_prefetch(self, md: ModelDeployment, kept_image: str | None) -> None:
        """Makes `md` an owner of the prefetch DaemonSet of each image it uses, and no longer
        of those it stopped using; a DaemonSet whose last owner leaves is deleted."""
        ns = md.namespace
        targets = {t.name: t for t in prefetch_targets(md, self.config, kept_image)}
        for name, target in targets.items():
            async with self._prefetch_locks[(ns, name)]:
                found = self.store.get(DAEMON_SET[1], ns, name)
                manifest = render_prefetch(target, ns, prefetch_owners(found, md))
                found = found or await self.existing(manifest)
                if found is not None and (who := holder(found, manifest)):
                    logger.warning("not prefetching %s in %s: %s", target.image, ns, who)
                    continue
                await self.apply_if_changed(manifest, found)
        left = [d["metadata"]["name"] for d in self.store.owned_by(DAEMON_SET[1], ns, md.uid)]
        for name in left:
            if name in targets:
                continue
            async with self._prefetch_locks[(ns, name)]:
                found = self.store.get(DAEMON_SET[1], ns, name)  # as the last writer left it
                if found is None:
                    continue
                refs = [
                    ref
                    for ref in found["metadata"].get("ownerReferences") or []
                    if ref["uid"] != md.uid
                ]
                if refs:
                    patch = {"metadata": {"ownerReferences": refs}}
                    patched = await self.kube.merge_patch(DAEMON_SET, ns, name, patch)
                    self.store.upsert(DAEMON_SET[1], patched)
                else:
                    logger.info("deleting prefetch DaemonSet %s/%s: no resource uses it", ns, name)
                    await self.kube.delete(DAEMON_SET, ns, name)
                    self.store.remove(DAEMON_SET[1], ns, name)

    async def with_claim_if_unschedulable(self, observed: Observed) -> Observed:
        """Reads the cache claim when a pod of this resource cannot be scheduled: an unbound
        claim is a common cause, and the scheduler's words do not name it."""
        download_pods = [p for d in observed.downloads for p in d.pods]
        if not any(unschedulable(p) for p in [*download_pods, *observed.pods]):
            return observed
        name = cache_claim_name(observed.md, self.config)
        claim = await self.kube.get(CLAIM, observed.md.namespace, name)
        return dataclasses.replace(observed, cache_claim=claim)

    async def with_pod_events(self, observed: Observed) -> Observed:
        """Reads the events of the pods whose start status explains (an image pull under way,
        the newest ready pod's timeline); looks again soon at a pod just scheduled that creates
        its containers with no pull in its events yet (the kubelet may not have said so yet)."""
        md = observed.md
        live = [p for p in observed.pods if not p["metadata"].get("deletionTimestamp")]
        recorded = md.status.startup.model_dump(by_alias=True) if md.status.startup else None
        names = pods_to_explain(live, recorded)
        if not names:
            return observed
        events = {name: await self.kube.events_of(md.namespace, "Pod", name) for name in names}
        now = datetime.datetime.now(datetime.UTC)
        if any(
            name in events and just_scheduled(pod, now) and not pull_in_progress(pod, events[name])
            for pod in live
            if not is_ready(pod) and (name := pod["metadata"]["name"])
        ):
            self.requeue_after((md.namespace, md.name), STARTUP_RECHECK_SECONDS)
        return dataclasses.replace(observed, pod_events=events)

    async def write_status(
        self, md: ModelDeployment, body: dict[str, Any], status: dict[str, Any], now: str
    ) -> bool:
        """One merge patch of the operator's status keys, only when one of them changed; then,
        without waiting, an Event for each notable transition."""
        current = body.get("status") or {}
        if contains(current, status):
            return False
        patched = await self.kube.patch_status(md.namespace, md.name, status)
        self.store.upsert(KIND, patched)  # the next pass starts from what was written
        if changes := transitions(md.status.conditions, status["conditions"]):
            self.events.post_soon(md, changes, now)
        return True

    # ---- the loop -------------------------------------------------------------------------

    async def reconcile(self, namespace: str, name: str) -> None:
        """Brings one ModelDeployment's children and status in line with its spec."""
        try:
            await self._reconcile(namespace, name)
        except ApiError as error:
            if not namespace_terminating(error):
                raise
            logger.debug("namespace %s is being deleted; leaving %s alone", namespace, name)

    async def _reconcile(self, namespace: str, name: str) -> None:
        body = self.store.get(KIND, namespace, name)
        if body is None:
            self.forget(namespace, name)
            await self.model_keys.publish(namespace, name, None)
            return
        md, downloads = self.parsed(body)
        if md is None:
            try:
                ModelDeployment.from_body(body)
            except pydantic.ValidationError as error:
                await self._report_invalid(body, error)
            return
        if md.deleting:
            return
        await self.ensure_cache_claim(md)
        secrets = await self.check_tokens(md, downloads), await self.check_secrets(md)
        kept = self.pacer.kept_image(md, self.store.get("Deployment", namespace, name))
        try:
            # Resources sharing a download write its Job and identity: one at a time (the
            # locks taken in one order, so two resources sharing two downloads cannot wait on
            # each other).
            async with contextlib.AsyncExitStack() as held:
                for job_name in sorted({d.job_name for d in downloads}):
                    await held.enter_async_context(self._download_locks[(namespace, job_name)])
                observed = self.observe(md, downloads, *secrets, kept)
                conflicts = await self.apply_children(observed)
                if any(d.role is None for d in observed.downloads) and not conflicts:
                    # the Roles now exist: their dependants can follow
                    observed = self.observe(md, downloads, *secrets, kept)
                    conflicts = await self.apply_children(observed)
        finally:
            self.pacer.applied(md)
        if observed.stale_jobs and not conflicts:
            await self.release_stale_jobs(observed)
        if not conflicts:
            await self.sync_prefetch(md, kept)
        if not self.config.network_policies:
            await self.remove_policies(md)
        observed = self.observe(md, downloads, *secrets, kept)  # what was just applied counts too
        observed = dataclasses.replace(observed, name_conflicts=conflicts)
        observed = await self.with_claim_if_unschedulable(observed)
        observed = await self.with_pod_events(observed)
        now = utcnow()
        await self.write_status(md, body, derive_status(observed, self.config, now), now)

    async def _report_invalid(self, body: dict[str, Any], error: pydantic.ValidationError) -> None:
        meta = body["metadata"]
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        status = {
            "observedGeneration": meta.get("generation"),
            "phase": "Failed",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "InvalidSpec",
                    "message": f"spec.{where}: {first['msg']}",
                    "lastTransitionTime": utcnow(),
                    "observedGeneration": meta.get("generation"),
                }
            ],
        }
        current = ModelDeploymentStatus.model_validate(body.get("status") or {})
        if current.conditions and current.conditions[0].reason == "InvalidSpec":
            return
        await self.kube.patch_status(meta["namespace"], meta["name"], status)
        target = EventTarget(meta["name"], meta["namespace"], meta["uid"])
        changes = transitions(current.conditions, status["conditions"])
        await self.events.record(target, changes, status["conditions"][0]["lastTransitionTime"])
