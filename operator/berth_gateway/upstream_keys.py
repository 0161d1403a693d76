"""The key each model's own runtime expects (spec.auth.apiKeySecretRef), from the one Secret the
operator copies those keys into: the gateway reads no Secret of any tenant."""

from __future__ import annotations

import base64
from collections.abc import Mapping

from berth_operator.controller.model_keys import entry_name

from berth_gateway.errors import ModelNotReady
from berth_gateway.table import Model


class UpstreamKeys:
    """The copied keys, replaced whole at each change of their Secret (watched)."""

    def __init__(self, secret: str | None, namespace: str, retry_after: int) -> None:
        self.secret = secret
        self.namespace = namespace
        self.retry_after = retry_after
        self._keys: dict[str, str] = {}

    def replace(self, data: Mapping[str, str] | None) -> None:
        self._keys = {
            entry: base64.b64decode(value).decode(errors="replace")
            for entry, value in (data or {}).items()
        }

    def key_for(self, model: Model) -> str | None:
        if model.auth is None:
            return None
        if self.secret is None:
            raise ModelNotReady(
                f"model {model.served_name} needs its own key (spec.auth.apiKeySecretRef) and "
                "this gateway reads none: start it with --model-keys-secret",
                "SecretMissing",
                self.retry_after,
            )
        key = self._keys.get(entry_name(model.namespace, model.name))
        if key is None:
            raise ModelNotReady(
                f"model {model.served_name}: its key (spec.auth.apiKeySecretRef) is not in "
                f"Secret {self.namespace}/{self.secret} yet; the operator copies it there "
                "once the model's Secret and key exist (see the model's Ready condition)",
                "SecretMissing",
                self.retry_after,
            )
        return key
