"""The key each model's own runtime expects (spec.auth.apiKeySecretRef), read from its Secret
when needed and kept a short while."""

from __future__ import annotations

import base64
import time

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Secret

from berth_gateway.errors import ModelNotReady
from berth_gateway.table import Model


class UpstreamKeys:
    """First key of the model's Secret (the runtime accepts any of them), cached for `ttl` s."""

    def __init__(self, client: AsyncClient, ttl: float, retry_after: int) -> None:
        self.client = client
        self.ttl = ttl
        self.retry_after = retry_after
        self._cache: dict[tuple[str, str, str], tuple[float, str]] = {}

    async def key_for(self, model: Model) -> str | None:
        if model.auth is None:
            return None
        ref = (model.namespace, model.auth.name, model.auth.key)
        cached = self._cache.get(ref)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        try:
            secret = await self.client.get(Secret, model.auth.name, namespace=model.namespace)
        except ApiError as error:
            raise ModelNotReady(
                f"model {model.served_name}: the gateway cannot read its key Secret "
                f"{model.namespace}/{model.auth.name} ({error.status.message}); check "
                "spec.auth.apiKeySecretRef and the gateway's RBAC",
                "SecretMissing",
                self.retry_after,
            ) from None
        raw = (secret.data or {}).get(model.auth.key)
        if raw is None:
            raise ModelNotReady(
                f"model {model.served_name}: Secret {model.namespace}/{model.auth.name} has no "
                f"key '{model.auth.key}' (spec.auth.apiKeySecretRef.key)",
                "SecretKeyMissing",
                self.retry_after,
            )
        text = base64.b64decode(raw).decode().replace(",", "\n")
        key = next((k.strip() for k in text.splitlines() if k.strip()), "")
        self._cache[ref] = (time.monotonic() + self.ttl, key)
        return key
