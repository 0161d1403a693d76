"""Thin calls to buildah, in the storage it uses for every Berth image."""

from __future__ import annotations

import subprocess


def buildah(*args: str) -> str:
    """Runs buildah and returns its output; a failure stops the build with buildah's words."""
    done = subprocess.run(["buildah", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"buildah {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def image_exists(name: str) -> bool:
    """Whether buildah's storage holds the image."""
    return (
        subprocess.run(
            ["buildah", "inspect", "--type", "image", name], capture_output=True
        ).returncode
        == 0
    )
