"""Entry point of the download Job: `python -m berth_runtime.download` (settings from env).

Exit codes: 0 done; 2 a failure a retry cannot fix (the Job stops); 1 worth a retry.
The reason goes to the termination message as JSON, where the operator reads it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path

from berth_runtime.download.errors import DownloadError
from berth_runtime.download.job import DownloadRequest, run_download
from berth_runtime.download.progress import DownloadProgress
from berth_runtime.report import StatusPatcher

logger = logging.getLogger("berth_runtime.download")
FINAL_REPORT_SECONDS = float(os.environ.get("BERTH_FINAL_REPORT_SECONDS", "60"))
TERMINATION_LOG = Path(os.environ.get("BERTH_TERMINATION_LOG", "/dev/termination-log"))


def terminate(error: DownloadError) -> None:
    """Writes the reason where Kubernetes keeps it, and exits with the retry verdict."""
    logger.error("%s", error)
    with contextlib.suppress(OSError):
        TERMINATION_LOG.write_text(json.dumps({"reason": error.reason, "message": error.message}))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(2 if error.permanent else 1)


def owners_of_job(namespace: str, job_name: str, client: object) -> list[str]:
    from lightkube.resources.batch_v1 import Job

    job = client.get(Job, job_name, namespace=namespace)  # type: ignore[attr-defined]
    return [r.name for r in job.metadata.ownerReferences or [] if r.kind == "ModelDeployment"]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    request = DownloadRequest.from_env()
    namespace, job_name = os.environ.get("POD_NAMESPACE"), os.environ.get("BERTH_JOB_NAME")
    patcher = None
    if namespace and job_name:
        patcher = StatusPatcher(namespace, float(os.environ.get("BERTH_REPORT_SECONDS", "5")))

    def report(progress: DownloadProgress, final: bool) -> None:
        logger.info(
            "%s: %d/%d bytes, %d/%d files",
            request.repo,
            progress.bytes_done,
            progress.bytes_total,
            progress.files_done,
            progress.files_total,
        )
        if patcher is None or not (final or patcher.due()):
            return
        # The last report is the truth users read: retry it through an API outage, for a while.
        deadline = time.monotonic() + (FINAL_REPORT_SECONDS if final else 0)
        while not write(patcher, progress, final) and time.monotonic() < deadline:
            time.sleep(2)

    def write(patcher: StatusPatcher, progress: DownloadProgress, final: bool) -> bool:
        try:
            owners = owners_of_job(namespace, job_name, patcher.client)  # type: ignore[arg-type]
        except Exception as error:
            logger.warning("could not read Job %s: %s", job_name, error)
            return False
        return patcher.patch(
            owners, "download", {"job": job_name, **progress.as_status()}, force=final
        )

    def on_stall(seconds: float) -> None:
        terminate(
            DownloadError(
                "Stalled",
                f"no bytes arrived for {seconds:.0f} s from the hub; the Job retries",
                permanent=False,
            )
        )

    try:
        run_download(request, report, on_stall)
    except DownloadError as error:
        terminate(error)
    logger.info("%s@%s is complete in %s", request.repo, request.revision, request.cache_dir)


if __name__ == "__main__":
    main()
