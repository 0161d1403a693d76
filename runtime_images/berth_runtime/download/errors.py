"""Download failures, typed: each has a CamelCase reason, a message with the fix, a retry verdict."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DownloadError(Exception):
    """A failure the download Job reports in status; `permanent` ones are not retried."""

    reason: str
    message: str
    permanent: bool = True

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def classify(error: BaseException, repo: str, revision: str, has_token: bool) -> DownloadError:
    """Turns a huggingface_hub or network exception into a typed DownloadError."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from requests import ConnectionError as RequestsConnectionError
    from requests import Timeout

    if isinstance(error, DownloadError):
        return error
    if isinstance(error, GatedRepoError):
        if not has_token:
            return DownloadError(
                "AuthRequired",
                f"{repo} is gated: set spec.model.tokenSecretRef to a Secret holding a Hugging Face "
                "token whose account accepted the model's conditions",
            )
        return DownloadError(
            "GatedAccessDenied",
            f"the token has no access to {repo}: accept the model's conditions on its page with the "
            "token's account, or use another token",
        )
    if isinstance(error, RevisionNotFoundError):
        return DownloadError(
            "RevisionNotFound",
            f"revision {revision} does not exist in {repo}: fix spec.model.revision",
        )
    if isinstance(error, RepositoryNotFoundError):
        if not has_token:
            return DownloadError(
                "AuthRequired",
                f"{repo} was not found without a token: it is private or does not exist; fix "
                "spec.model.repo, or set spec.model.tokenSecretRef",
            )
        return DownloadError(
            "RepoNotFound", f"{repo} does not exist or the token cannot see it: fix spec.model.repo"
        )
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else None
        return DownloadError(
            "NetworkError",
            f"the hub answered {status} for {repo}: {str(error).splitlines()[0][:200]}",
            permanent=False,
        )
    if isinstance(error, RequestsConnectionError | Timeout | OSError):
        return DownloadError(
            "NetworkError",
            f"could not reach the hub for {repo}: {str(error)[:200]}; check egress or HF_ENDPOINT",
            permanent=False,
        )
    return DownloadError(
        "DownloadFailed", f"{type(error).__name__}: {str(error)[:300]}", permanent=False
    )
