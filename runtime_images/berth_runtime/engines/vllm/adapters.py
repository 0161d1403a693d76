"""LoRA adapters of a running vLLM: what the resource asks for, loaded and unloaded in place.

The pod template holds no adapter: the supervisor follows spec.vllm.adapters of its own
ModelDeployment (a watch on that one object), loads each adapter once its files are in the cache
through vLLM's runtime routes (/v1/load_lora_adapter, /v1/unload_lora_adapter, opened for the
supervisor only: the gateway forwards inference routes alone), and reports what it serves in
status.adapterLoads.<pod>.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from berth_operator.api.modeldeployment import (
    BASE_MODEL_MISMATCH,
    AdapterFailure,
    AdapterLoads,
    LoraAdapter,
)

from berth_runtime.clock import utcnow

logger = logging.getLogger(__name__)

#: what a PEFT adapter directory holds: its config, and its weights in one of these files
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def wanted_adapters(body: Mapping[str, Any] | None) -> list[LoraAdapter]:
    """spec.vllm.adapters of a ModelDeployment object (none when it has no vllm settings)."""
    spec = (body or {}).get("spec") or {}
    return [LoraAdapter.model_validate(a) for a in (spec.get("vllm") or {}).get("adapters") or []]


def adapter_dir(cache_dir: Path, adapter: LoraAdapter) -> Path | None:
    """The adapter's snapshot in the cache once its config and weights are there, else None
    (not downloaded yet: the download Job writes each file whole, then links it)."""
    from huggingface_hub import snapshot_download

    try:
        path = Path(
            snapshot_download(
                adapter.repo,
                revision=adapter.revision,
                cache_dir=cache_dir,
                local_files_only=True,
            )
        )
    except Exception:  # any lookup failure means: not in the cache yet
        return None
    if (path / ADAPTER_CONFIG).is_file() and any((path / w).is_file() for w in ADAPTER_WEIGHTS):
        return path
    return None


def adapter_config(path: Path) -> dict[str, Any]:
    """An adapter's adapter_config.json ({} when it cannot be read)."""
    import json

    try:
        config = json.loads((path / ADAPTER_CONFIG).read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def adapter_rank(path: Path) -> int | None:
    """The highest LoRA rank in an adapter's config (`r`, or a larger one in `rank_pattern`)."""
    config = adapter_config(path)
    ranks = [config.get("r"), *(config.get("rank_pattern") or {}).values()]
    found = [r for r in ranks if isinstance(r, int)]
    return max(found) if found else None


def base_mismatch(name: str, path: Path, base_repo: str) -> AdapterFailure | None:
    """An adapter trained on another model than the one served (its config's
    base_model_name_or_path): vLLM loads it all the same, so it is loaded, and said. A local
    path is compared by its last part with the repository's name."""
    trained_on = str(adapter_config(path).get("base_model_name_or_path") or "").rstrip("/")
    if not trained_on or not base_repo:
        return None
    same = trained_on == base_repo or (
        trained_on.startswith(("/", ".")) and Path(trained_on).name == base_repo.split("/")[-1]
    )
    if same:
        return None
    return AdapterFailure(
        name=name,
        reason=BASE_MODEL_MISMATCH,
        message=f"adapter {name} was trained on {trained_on}, not on the served {base_repo}: "
        "its answers may make no sense; use an adapter trained on this model",
    )


def rank_refusal(name: str, path: Path, max_rank: int) -> AdapterRefused | None:
    """An adapter whose rank is over vLLM's max_lora_rank, refused before vLLM sees it (vLLM
    refuses it too, and at start-up it would refuse to start at all)."""
    rank = adapter_rank(path)
    if rank is None or rank <= max_rank:
        return None
    return AdapterRefused(
        "AdapterRankTooHigh",
        f"adapter {name} has rank {rank}, over spec.vllm.lora.maxLoraRank ({max_rank}): raise "
        "maxLoraRank (this restarts the pods), or use an adapter of a lower rank",
    )


class AdapterRefused(Exception):
    """vLLM did not load an adapter; `reason` is a CamelCase cause for status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def refusal(status: int, text: str) -> AdapterRefused:
    """vLLM's answer to a load, as a reason and its own words."""
    lowered = text.lower()
    if "rank" in lowered and "max" in lowered:
        reason = "AdapterRankTooHigh"
        hint = "; raise spec.vllm.lora.maxLoraRank (this restarts the pods)"
    elif "target module" in lowered or "not supported" in lowered:
        reason, hint = "AdapterIncompatible", ""
    else:
        reason, hint = "AdapterLoadFailed", ""
    return AdapterRefused(reason, f"vLLM answered {status}: {text.strip()[:600]}{hint}")


@dataclass
class VllmAdapterRoutes:
    """vLLM's runtime adapter routes, on the pod's own port, with the pod's API key."""

    base_url: str
    api_key: str | None = None
    timeout_seconds: float = 300.0

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def _post(self, path: str, body: dict[str, str]) -> tuple[int, str]:
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(f"{self.base_url}{path}", json=body, headers=self._headers()) as answer,
        ):
            return answer.status, await answer.text()

    async def load(self, name: str, path: Path) -> None:
        status, text = await self._post(
            "/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(path)}
        )
        if status != 200:
            raise refusal(status, text)

    async def unload(self, name: str) -> None:
        status, text = await self._post("/v1/unload_lora_adapter", {"lora_name": name})
        if status != 200 and status != 404:  # 404: not loaded, which is what was asked
            logger.warning("unloading adapter %s: vLLM answered %s: %s", name, status, text)


@dataclass
class AdapterSync:
    """Brings what vLLM serves in line with the wanted adapters, one pass at a time."""

    routes: VllmAdapterRoutes
    find: Callable[[LoraAdapter], Awaitable[Path | None]]
    max_rank: int = 16
    #: the served model's repository, which the adapters should have been trained on
    base_repo: str = ""
    #: name -> the adapter as loaded (a changed repo or revision is unloaded, then loaded)
    loaded: dict[str, LoraAdapter] = field(default_factory=dict)
    failed: dict[str, tuple[LoraAdapter, AdapterFailure]] = field(default_factory=dict)
    #: wanted adapters whose files are not in the cache yet
    not_in_cache: set[str] = field(default_factory=set)
    #: loaded adapters trained on another base model
    mismatched: dict[str, AdapterFailure] = field(default_factory=dict)

    def _loaded(self, adapter: LoraAdapter, path: Path) -> None:
        self.loaded[adapter.name] = adapter
        if mismatch := base_mismatch(adapter.name, path, self.base_repo):
            self.mismatched[adapter.name] = mismatch
            logger.warning("%s", mismatch.message)

    def startable(self, found: Mapping[LoraAdapter, Path | None]) -> dict[str, Path]:
        """Of the wanted adapters (and where they are in the cache), those vLLM starts with
        (its --lora-modules): in the cache, and of a rank it takes; the others are recorded as
        not in the cache or failed, as a pass would."""
        start: dict[str, Path] = {}
        for adapter, path in found.items():
            if path is None:
                self.not_in_cache.add(adapter.name)
            elif refused := rank_refusal(adapter.name, path, self.max_rank):
                failure = AdapterFailure(
                    name=adapter.name, reason=refused.reason, message=str(refused)
                )
                self.failed[adapter.name] = (adapter, failure)
            else:
                self._loaded(adapter, path)
                start[adapter.name] = path
        return start

    async def apply(self, wanted: list[LoraAdapter]) -> bool:
        """One pass; True when what is served or failed changed."""
        before = self.loads()
        by_name = {a.name: a for a in wanted}
        for name, adapter in list(self.loaded.items()):
            if by_name.get(name) != adapter:
                await self.routes.unload(name)
                del self.loaded[name]
                self.mismatched.pop(name, None)
                logger.info("adapter %s unloaded", name)
        self.failed = {n: f for n, f in self.failed.items() if by_name.get(n) == f[0]}
        self.not_in_cache = set()
        for name, adapter in by_name.items():
            if name in self.loaded or name in self.failed:
                continue  # a refused adapter is tried again when its entry changes
            path = await self.find(adapter)
            if path is None:
                self.not_in_cache.add(name)  # a later pass loads it
                continue
            try:
                if refused := rank_refusal(name, path, self.max_rank):
                    raise refused
                await self.routes.load(name, path)
            except AdapterRefused as error:
                self.failed[name] = (
                    adapter,
                    AdapterFailure(name=name, reason=error.reason, message=str(error)),
                )
                logger.warning("adapter %s not loaded: %s", name, error)
            except (aiohttp.ClientError, TimeoutError) as error:
                logger.warning("adapter %s not loaded yet: %s", name, error)  # next pass
            else:
                self._loaded(adapter, path)
                logger.info("adapter %s loaded from %s", name, path)
        return self.loads() != before

    def loads(self) -> AdapterLoads:
        """What this pod reports (status.adapterLoads.<pod>)."""
        return AdapterLoads(
            loaded=sorted(self.loaded),
            not_in_cache=sorted(self.not_in_cache),
            failed=[f for _, f in sorted(self.failed.values(), key=lambda f: f[1].name)],
            mismatched=[self.mismatched[n] for n in sorted(self.mismatched)],
        )

    def report(self) -> dict[str, Any]:
        return {**self.loads().model_dump(by_alias=True), "updatedAt": utcnow()}


async def follow_resource(
    namespace: str,
    name: str,
    on_change: Callable[[Mapping[str, Any]], Awaitable[None]],
    retry_seconds: float = 5.0,
) -> None:
    """Calls `on_change` with the ModelDeployment as it is, then at each change, for ever (a
    watch on that one object; re-established after any error)."""
    from lightkube import AsyncClient

    from berth_runtime.resources import ModelDeployment

    client = AsyncClient(field_manager="berth-runtime")
    while True:
        try:
            async for _, obj in client.watch(
                ModelDeployment, namespace=namespace, fields={"metadata.name": name}
            ):
                await on_change(obj.to_dict())
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the API may be away: serving goes on
            logger.warning(
                "following %s/%s: %s; again in %g s", namespace, name, error, retry_seconds
            )
        await asyncio.sleep(retry_seconds)
