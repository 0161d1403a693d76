"""An image's content key: what its Dockerfile copies, the Dockerfile itself, its build args."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from pathlib import Path

# Never part of an image (the same as .dockerignore).
IGNORED = ("__pycache__", ".pyc")


def copied_sources(dockerfile: str) -> list[str]:
    """The build-context paths that COPY and ADD lines read (not those from other stages)."""
    text = re.sub(r"\\\n", " ", dockerfile)
    sources: list[str] = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True) if line.strip() else []
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        arguments = words[1:]
        if any(word.startswith("--from") for word in arguments):
            continue
        paths = [word for word in arguments if not word.startswith("--")]
        sources += paths[:-1]
    return sources


def entrypoint(dockerfile: Path) -> tuple[str, ...]:
    """The exec-form ENTRYPOINT of a Dockerfile."""
    found = re.findall(r"^ENTRYPOINT\s+(\[.*\])\s*$", dockerfile.read_text(), re.MULTILINE)
    if not found:
        raise ValueError(f"{dockerfile} has no exec-form ENTRYPOINT")
    return tuple(json.loads(found[-1]))


def _files(root: Path, source: str) -> list[Path]:
    path = root / source
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SystemExit(f"{source} is copied into an image but does not exist under {root}")
    return sorted(
        file
        for file in path.rglob("*")
        if file.is_file()
        and not any(part in IGNORED or part.endswith(".pyc") for part in file.parts)
    )


def content_key(root: Path, dockerfile: Path, build_args: dict[str, str]) -> str:
    """A digest that changes when anything the image is built from changes."""
    digest = hashlib.sha256()
    text = (root / dockerfile).read_text()
    digest.update(text.encode())
    for name, value in sorted(build_args.items()):
        digest.update(f"\0arg {name}={value}".encode())
    for source in copied_sources(text):
        for file in _files(root, source):
            digest.update(f"\0file {file.relative_to(root)}\0".encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]
