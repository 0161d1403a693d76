"""Patches status keys of ModelDeployments through the pod's own service account.

Rate-limited, and never in the way: a failed write is logged and dropped, the work goes on.
"""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger(__name__)


class StatusPatcher:
    """Merge patches of `status.<key>`; at most one write per `min_interval` unless forced."""

    def __init__(self, namespace: str, min_interval: float = 5.0, client: Any = None) -> None:
        self.namespace = namespace
        self.min_interval = min_interval
        self._client = client
        self._last = 0.0

    @property
    def client(self) -> Any:
        if self._client is None:
            from lightkube import Client

            self._client = Client(field_manager="berth-runtime")
        return self._client

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.min_interval

    def patch(self, names: list[str], key: str, value: dict[str, Any], force: bool = False) -> bool:
        """Writes `status.<key>` of each named resource; False when skipped or failed."""
        if not force and not self.due():
            return False
        self._last = time.monotonic()
        from lightkube.types import PatchType

        from berth_runtime.resources import ModelDeployment

        ok = True
        for name in names:
            try:
                self.client.patch(
                    ModelDeployment.Status,
                    name,
                    {"status": {key: value}},
                    namespace=self.namespace,
                    patch_type=PatchType.MERGE,
                )
            except Exception as error:  # the API may be down: serving and downloading go on
                ok = False
                logger.warning("could not write status.%s of %s: %s", key, name, error)
        return ok
