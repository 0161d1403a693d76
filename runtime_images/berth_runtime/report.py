"""Reports from pods through their own service account: a resource's status.runtime, a download
Job's progress annotation.

Rate-limited, and never in the way: a failed write is logged and dropped, the work goes on.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from berth_operator.api.metadata import DOWNLOAD_PROGRESS_ANNOTATION
from berth_operator.api.modeldeployment import DownloadReport

logger = logging.getLogger(__name__)


class _RateLimitedWriter:
    """At most one write per `min_interval` unless forced; a lazily created API client."""

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
        return self.seconds_until_due() == 0

    def seconds_until_due(self) -> float:
        """How long until the next unforced write may go."""
        return max(0.0, self.min_interval - (time.monotonic() - self._last))

    def _merge_patch(self, resource: Any, name: str, patch: dict[str, Any], what: str) -> bool:
        from lightkube.types import PatchType

        self._last = time.monotonic()
        try:
            self.client.patch(
                resource, name, patch, namespace=self.namespace, patch_type=PatchType.MERGE
            )
        except Exception as error:  # the API may be down: serving and downloading go on
            logger.warning("could not write %s of %s: %s", what, name, error)
            return False
        return True


class StatusPatcher(_RateLimitedWriter):
    """Merge patches of `status.<key>` of a ModelDeployment."""

    def patch(self, name: str, key: str, value: dict[str, Any], force: bool = False) -> bool:
        """Writes `status.<key>` of the named resource; False when skipped or failed."""
        if not force and not self.due():
            return False
        from berth_runtime.resources import ModelDeployment

        return self._merge_patch(
            ModelDeployment.Status, name, {"status": {key: value}}, f"status.{key}"
        )


class JobAnnotator(_RateLimitedWriter):
    """Writes the download's progress onto its own Job, the only object its Role may patch."""

    def __init__(self, namespace: str, job_name: str, min_interval: float = 5.0) -> None:
        super().__init__(namespace, min_interval)
        self.job_name = job_name

    def report(self, report: DownloadReport) -> bool:
        from lightkube.resources.batch_v1 import Job

        value = report.model_dump_json(by_alias=True, exclude_none=True)
        patch = {"metadata": {"annotations": {DOWNLOAD_PROGRESS_ANNOTATION: value}}}
        return self._merge_patch(Job, self.job_name, patch, "the progress annotation")
