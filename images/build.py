"""Builds an image with buildah unless one of the same content is already there, and pushes it."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from images import catalog, content, registry
from images.buildah import buildah, image_exists

UV_CACHE = Path.home() / ".cache" / "uv"
KEY = re.compile(r"[0-9a-f]{16}")  # content.content_key's length
TRUST = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))


@dataclass(frozen=True)
class Built:
    """One image: where it is, what it was built from, and what building it took."""

    name: str
    local: str
    key: str
    seconds: float
    rebuilt: bool
    size: str


def _size(image: str) -> str:
    """The image's uncompressed size, as buildah prints it (e.g. "3.1 GB")."""
    for entry in json.loads(buildah("images", "--json", image)):
        if image in entry["names"]:
            return entry["size"]
    return "?"


def drop_older(name: str, keep: str) -> None:
    """Removes the images of `name` that earlier contents left, keeping `keep` (content key)."""
    for entry in json.loads(buildah("images", "--json")):
        for old in entry["names"] or []:
            repository, _, key = old.rpartition(":")
            if repository == f"localhost/berth-{name}" and key != keep and KEY.fullmatch(key):
                buildah("rmi", old)


def keyed_name(name: str, key: str) -> str:
    """The local name of image `name` built from the content with key `key`."""
    return f"localhost/berth-{name}:{key}"


def base_of(name: str, debian: str) -> str:
    """What image `name` is built on: its parent image (catalog.PARENTS) of this tree's content,
    or the Debian base."""
    parent = catalog.PARENTS.get(name)
    return keyed_name(parent, key_of(parent, debian)) if parent else debian


def key_of(name: str, debian: str) -> str:
    """The content key of image `name` from the files of this tree, its parents' included, on
    the Debian base `debian`."""
    return content.content_key(
        catalog.ROOT, catalog.dockerfile(name), {"BASE": base_of(name, debian)}
    )


def build(name: str, debian: str, tag: str) -> Built:
    """Builds one image from the repository root, tagged with its content key and `tag`; an
    image with the same content key is not built again. Its parent must be built first."""
    dockerfile = catalog.dockerfile(name)
    build_args = {"BASE": base_of(name, debian)}
    key = key_of(name, debian)
    local = f"localhost/berth-{name}:{tag}"
    # the content key is a tag too: a label would differ in every step and defeat the layer cache
    keyed = keyed_name(name, key)
    start = time.monotonic()
    rebuilt = not image_exists(keyed)
    if rebuilt:
        # lent to RUN steps (images/python-venv.sh); only empty mount points stay in the image
        volumes = [f"--volume={UV_CACHE}:/run/berth-build/uv"] if UV_CACHE.is_dir() else []
        volumes += [f"--volume={TRUST}:/run/berth-build/ca.crt:ro"] if TRUST.is_file() else []
        buildah(
            "bud",
            "--layers",
            "--force-rm",  # a failed step leaves no working container behind
            "--isolation",
            "oci",
            "--runtime",
            "runc",  # crun refuses cgroup v1 hierarchies mixed with v2
            "--network",
            "host",  # apt and PyPI, while the image is built
            *volumes,
            *(f"--build-arg={arg}={value}" for arg, value in build_args.items()),
            "--file",
            str(catalog.ROOT / dockerfile),
            "--tag",
            keyed,
            str(catalog.ROOT),
        )
    buildah("tag", keyed, local)
    drop_older(name, key)
    return Built(name, local, key, time.monotonic() - start, rebuilt, _size(local))


def push(image: Built, to: str, tag: str) -> list[str]:
    """Pushes the image as repository:tag and repository:key; skipped when both are there."""
    targets = [f"{catalog.repository(image.name, to)}:{t}" for t in (tag, image.key)]
    local = registry.is_local(to)
    if local:
        digests = {registry.manifest_digest(target) for target in targets}
        if len(digests) == 1 and None not in digests:
            return targets
    for target in targets:
        buildah(
            "push",
            f"--tls-verify={'false' if local else 'true'}",
            image.local,
            f"docker://{target}",
        )
    return targets
