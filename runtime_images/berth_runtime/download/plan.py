"""What to download: the resolved commit and, per file, its size, blob name and sha256."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PlannedFile:
    path: str
    size: int
    blob: str  # the blob's name in the cache (its ETag)
    sha256: str | None  # LFS files only


@dataclass(frozen=True)
class DownloadPlan:
    repo: str
    revision: str
    commit: str
    files: tuple[PlannedFile, ...]
    allow_patterns: tuple[str, ...] = ()
    ignore_patterns: tuple[str, ...] = ()

    @property
    def bytes_total(self) -> int:
        return sum(f.size for f in self.files)

    def repo_dir(self, cache_dir: Path) -> Path:
        """models--<org>--<name>, the Hugging Face cache layout."""
        return cache_dir / ("models--" + self.repo.replace("/", "--"))

    def marker(self, cache_dir: Path) -> Path:
        """The completion marker of this commit and these patterns."""
        patterns = json.dumps([sorted(self.allow_patterns), sorted(self.ignore_patterns)])
        digest = hashlib.sha256(patterns.encode()).hexdigest()[:12]
        return self.repo_dir(cache_dir) / ".berth" / f"complete-{self.commit}-{digest}.json"


def make_plan(
    repo: str,
    revision: str,
    token: str | None,
    allow_patterns: list[str],
    ignore_patterns: list[str],
) -> DownloadPlan:
    """Asks the hub for the commit and file metadata; keeps the files the patterns select."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    info = HfApi().model_info(repo, revision=revision, files_metadata=True, token=token)
    siblings = {s.rfilename: s for s in info.siblings or []}
    chosen = filter_repo_objects(
        items=list(siblings),
        allow_patterns=allow_patterns or None,
        ignore_patterns=ignore_patterns or None,
    )
    files = []
    for path in sorted(chosen):
        sibling = siblings[path]
        lfs = sibling.lfs
        sha256 = lfs.sha256 if lfs else None
        files.append(
            PlannedFile(path, int(sibling.size or 0), sha256 or str(sibling.blob_id), sha256)
        )
    return DownloadPlan(
        repo, revision, str(info.sha), tuple(files), tuple(allow_patterns), tuple(ignore_patterns)
    )
