"""Download failures get the reason that names their fix."""

from __future__ import annotations

import errno

from berth_runtime.download.errors import classify


def test_a_cache_the_job_cannot_write_is_not_a_network_error():
    for error in (
        PermissionError(errno.EACCES, "Permission denied", "/models/models--org--name"),
        OSError(errno.EROFS, "Read-only file system", "/models/models--org--name"),
    ):
        typed = classify(error, "org/name", "main", has_token=False)
        assert typed.reason == "CacheNotWritable", typed
        assert typed.permanent, "a retry cannot fix the volume's permissions"
        assert "/models/models--org--name" in typed.message and "fsGroup" in typed.message


def test_a_refused_connection_is_a_network_error_retried():
    typed = classify(
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "org/name", "main", False
    )
    assert (typed.reason, typed.permanent) == ("NetworkError", False)
