"""Entry point of the download Job: `python -m berth_runtime.download` (settings from env).

Exit codes: 0 done; 2 a failure a retry cannot fix (the Job stops); 1 worth a retry.
The reason goes to the termination message as JSON, where the operator reads it. Progress goes
onto the Job itself, as an annotation the operator copies into every sharer's status.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time

from berth_operator.api.podenv import DownloadEnv

from berth_runtime.download.errors import DownloadError
from berth_runtime.download.job import run_download
from berth_runtime.download.progress import DownloadProgress
from berth_runtime.report import JobAnnotator
from berth_runtime.signals import end_on_sigterm

logger = logging.getLogger("berth_runtime.download")


def terminate(env: DownloadEnv, error: DownloadError) -> None:
    """Writes the reason where Kubernetes keeps it, and exits with the retry verdict."""
    logger.error("%s", error)
    with contextlib.suppress(OSError):
        env.termination_log.write_text(
            json.dumps({"reason": error.reason, "message": error.message})
        )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(2 if error.permanent else 1)


def main() -> None:
    end_on_sigterm()  # a deleted Job's pod goes at once; the next one resumes partial files
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # a line per request otherwise
    env = DownloadEnv.from_env()
    annotator = None
    if env.namespace and env.job_name:
        annotator = JobAnnotator(env.namespace, env.job_name, env.report_seconds)

    def report(progress: DownloadProgress, final: bool) -> None:
        logger.info(
            "%s: %d/%d bytes, %d/%d files",
            env.repo,
            progress.bytes_done,
            progress.bytes_total,
            progress.files_done,
            progress.files_total,
        )
        if final:
            dump = progress.as_report().model_dump_json(by_alias=True, exclude_none=True)
            logger.info("final report: %s", dump)
        if annotator is None or not (final or annotator.due()):
            return
        # The last report is the truth users read: retry it through an API outage, for a while.
        deadline = time.monotonic() + (env.final_report_seconds if final else 0)
        while not annotator.report(progress.as_report()) and time.monotonic() < deadline:
            time.sleep(2)

    def on_stall(seconds: float) -> None:
        terminate(
            env,
            DownloadError(
                "Stalled",
                f"no bytes arrived for {seconds:.0f} s from the hub; the Job retries",
                permanent=False,
            ),
        )

    try:
        run_download(env, report, on_stall)
    except DownloadError as error:
        terminate(env, error)
    logger.info("%s@%s is complete in %s", env.repo, env.revision, env.cache_dir)


if __name__ == "__main__":
    main()
