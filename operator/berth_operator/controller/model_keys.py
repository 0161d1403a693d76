"""The keys models expect from the gateway (spec.auth.apiKeySecretRef), copied into one Secret in
the operator's namespace: the only Secret of models the gateway may read (by name), so the
component that faces clients reads no Secret of any tenant."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging

from lightkube.core.exceptions import ApiError

from berth_operator.kube import Kube

logger = logging.getLogger(__name__)

SECRET = ("v1", "Secret")


def entry_name(namespace: str, name: str) -> str:
    """The model's key in the copy: namespaces hold no dot, so the first dot splits."""
    return f"{namespace}.{name}"


def first_key(encoded: str) -> str:
    """The first key of a Secret value (base64) that lists keys by line or comma: the model
    server accepts any of them, the gateway sends this one."""
    text = base64.b64decode(encoded).decode(errors="replace").replace(",", "\n")
    return next((k.strip() for k in text.splitlines() if k.strip()), "")


class ModelKeys:
    """Writes an entry only when it differs from what the copy holds (a quiet cluster writes
    nothing); what the copy holds is read once, then known from the writes."""

    def __init__(self, kube: Kube, namespace: str, name: str | None) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self._digests: dict[str, str] | None = None
        self._reading = asyncio.Lock()

    async def _held(self) -> dict[str, str]:
        async with self._reading:  # many passes start at once: one read
            if self._digests is None:
                found = await self.kube.get(SECRET, self.namespace, self.name or "")
                data = (found or {}).get("data") or {}
                self._digests = {entry: _digest(value) for entry, value in data.items()}
            return self._digests

    async def publish(self, namespace: str, name: str, key: str | None) -> None:
        """The model's key, or None to remove its entry (no auth, or the resource is gone)."""
        if self.name is None:
            return
        entry = entry_name(namespace, name)
        value = base64.b64encode(key.encode()).decode() if key is not None else None
        try:
            held = await self._held()
            if held.get(entry) == (_digest(value) if value is not None else None):
                return
            await self._write(entry, value)
        except ApiError as error:
            self._digests = None  # read again on the next pass, which retries
            logger.warning(
                "copying the key of %s/%s into Secret %s/%s: %s",
                namespace,
                name,
                self.namespace,
                self.name,
                error.status.message,
            )
            return
        if value is None:
            held.pop(entry, None)
        else:
            held[entry] = _digest(value)

    async def _write(self, entry: str, value: str | None) -> None:
        patch = {"data": {entry: value}}
        try:
            await self.kube.merge_patch(SECRET, self.namespace, self.name or "", patch)
        except ApiError as error:
            if error.status.code != 404 or value is None:
                raise
            copy = {"apiVersion": "v1", "kind": "Secret"}
            copy["metadata"] = {"name": self.name, "namespace": self.namespace}
            if not await self.kube.create_if_missing({**copy, "data": {entry: value}}):
                await self.kube.merge_patch(SECRET, self.namespace, self.name or "", patch)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
