"""Other repositories a model needs: those a pyannote pipeline's config.yaml names.

pyannote.audio 4.0 (`Pipeline.from_pretrained`, `pipelines/utils/getter.py`) loads a
pipeline's parts from `pipeline.params.segmentation`, `.embedding` and `.plda`: each is a
`$model/<subfolder>` inside the pipeline's own repository, a repository name (`org/name`), or a
mapping with `checkpoint`, and optionally `subfolder` and `revision`. `SpeakerDiarization`
fills a part the config leaves out from pyannote/speaker-diarization-community-1 (its
`segmentation`, `embedding` or `plda` subfolder): speaker-diarization-3.1's config names no PLDA,
so pyannote 4 loads community-1's. Offline, each is found in the cache through `refs/<revision>`
(`main` unless the config says otherwise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PIPELINE_CONFIG = "config.yaml"
PARTS = ("segmentation", "embedding", "plda")
DIARIZATION_DEFAULTS = "pyannote/speaker-diarization-community-1"
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


@dataclass(frozen=True)
class Dependency:
    """A repository a pipeline loads parts from: the `subfolders` of it, or all of it."""

    repo: str
    revision: str = "main"
    subfolders: tuple[str, ...] = ()  # empty: the whole repository

    @property
    def allow_patterns(self) -> list[str]:
        return [f"{s.strip('/')}/*" for s in self.subfolders]

    def merged(self, other: Dependency) -> Dependency:
        """One download for two parts of the same repository and revision."""
        whole = not self.subfolders or not other.subfolders
        subfolders = () if whole else tuple(dict.fromkeys(self.subfolders + other.subfolders))
        return Dependency(self.repo, self.revision, subfolders)


def _reference(value: Any) -> Dependency | None:
    """The repository a part's entry names, or None (its own `$model/...`, a local path)."""
    if isinstance(value, dict):
        checkpoint, subfolder = value.get("checkpoint"), value.get("subfolder")
        revision = value.get("revision") or "main"
    else:
        checkpoint, subfolder, revision = value, None, "main"
    if not isinstance(checkpoint, str) or not REPO_ID.fullmatch(checkpoint):
        return None
    if checkpoint.startswith(("/", ".")) or Path(checkpoint).suffix in (".ckpt", ".bin", ".pt"):
        return None
    subfolders = (subfolder,) if isinstance(subfolder, str) and subfolder.strip("/") else ()
    return Dependency(checkpoint, str(revision), subfolders)


def pipeline_dependencies(config: Any) -> list[Dependency]:
    """The repositories other than its own that a pipeline config makes pyannote load."""
    if not isinstance(config, dict) or not isinstance(config.get("pipeline"), dict):
        return []
    pipeline = config["pipeline"]
    params = pipeline.get("params") or {}
    if not isinstance(params, dict):
        return []
    found: dict[tuple[str, str], Dependency] = {}
    for part in PARTS:
        if part in params:
            dependency = _reference(params[part])
        elif str(pipeline.get("name", "")).endswith(".SpeakerDiarization"):
            dependency = Dependency(DIARIZATION_DEFAULTS, subfolders=(part,))
        else:
            dependency = None
        if dependency is not None:
            key = (dependency.repo, dependency.revision)
            found[key] = found[key].merged(dependency) if key in found else dependency
    return list(found.values())


def read_dependencies(config_file: Path) -> list[Dependency]:
    """What a downloaded config.yaml names; none when it is no pipeline config or unreadable
    (the engine then says what is wrong with it)."""
    import yaml

    try:
        return pipeline_dependencies(yaml.safe_load(config_file.read_text()))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
