"""Download failures, typed: each has a CamelCase reason, a message with the fix, a retry verdict."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass


@dataclass
class DownloadError(Exception):
    """A failure the download Job reports in status; `permanent` ones are not retried."""

    reason: str
    message: str
    permanent: bool = True

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def _cause(error: BaseException) -> BaseException:
    """The hub's own error behind huggingface_hub's "not in the local cache either" wrapper."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    while isinstance(error, LocalEntryNotFoundError) and error.__cause__ is not None:
        error = error.__cause__
    return error


def classify(
    error: BaseException,
    repo: str,
    revision: str,
    has_token: bool,
    needed_by: str | None = None,
) -> DownloadError:
    """Turns a huggingface_hub or network exception into a typed DownloadError.

    `needed_by` names the repository whose pipeline config asked for `repo`, if not the spec's.
    """
    from httpx2 import ReadTimeout, TransportError
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(error, DownloadError):
        return error
    error = _cause(error)
    what = f"{repo} (named by {needed_by}'s config)" if needed_by else repo
    if isinstance(error, GatedRepoError):
        if not has_token:
            return DownloadError(
                "AuthRequired",
                f"{what} is gated: set spec.model.tokenSecretRef to a Secret holding a Hugging Face "
                "token whose account accepted the model's conditions",
            )
        return DownloadError(
            "GatedAccessDenied",
            f"the token has no access to {what}: accept the model's conditions on its page with "
            "the token's account, or use another token",
        )
    if isinstance(error, RevisionNotFoundError):
        return DownloadError(
            "RevisionNotFound",
            f"revision {revision} does not exist in {what}: fix spec.model.revision",
        )
    if isinstance(error, RepositoryNotFoundError):
        if not has_token:
            return DownloadError(
                "AuthRequired",
                f"{what} was not found without a token: it is private or does not exist; fix "
                "spec.model.repo, or set spec.model.tokenSecretRef",
            )
        return DownloadError(
            "RepoNotFound", f"{what} does not exist or the token cannot see it: fix spec.model.repo"
        )
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else None
        return DownloadError(
            "NetworkError",
            f"the hub answered {status} for {what}: {str(error).splitlines()[0][:200]}",
            permanent=False,
        )
    if isinstance(error, ReadTimeout):
        return DownloadError(
            "Stalled",
            f"the hub stopped sending {what} (no byte within huggingface_hub's read timeout, "
            "retries included); the Job retries",
            permanent=False,
        )
    if isinstance(error, PermissionError) or (
        isinstance(error, OSError) and error.errno == errno.EROFS
    ):
        user = f"uid {os.getuid()}, gid {os.getgid()}"
        return DownloadError(
            "CacheNotWritable",
            f"the download Job ({user}) cannot write {error.filename}: {error.strerror}; make the "
            "cache volume writable by the pod's fsGroup (a storage class whose volumes apply "
            f"fsGroup), or give the volume's directory to {user}",
        )
    if isinstance(error, TransportError | OSError):
        return DownloadError(
            "NetworkError",
            f"could not reach the hub for {what}: {str(error)[:200]}; check egress or HF_ENDPOINT",
            permanent=False,
        )
    return DownloadError(
        "DownloadFailed", f"{type(error).__name__}: {str(error)[:300]}", permanent=False
    )
