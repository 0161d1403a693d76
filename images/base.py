"""The base image: a Debian 12 root filesystem made by mmdebstrap from the apt mirror."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from images.buildah import buildah, image_exists

SUITE = "bookworm"
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
# What every image needs; an image adds its own with images/debian-packages.sh.
PACKAGES = ("python3.11", "python3-venv", "ca-certificates", "passwd")
RECIPE = (
    "--variant=minbase",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",  # without it usrmerge pulls in perl
    "--aptopt=APT::Install-Recommends false",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    '--customize-hook=rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*',
)


def key(sources: Path = SOURCES) -> str:
    """Digest of the recipe: the suite, the package list, mmdebstrap's options and the mirrors."""
    text = "\n".join((SUITE, *PACKAGES, *RECIPE, sources.read_text()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rootfs(cache: Path, sources: Path = SOURCES) -> Path:
    """The root filesystem tarball, made once per recipe under `cache`."""
    tar = cache / f"debian-{SUITE}-{key(sources)}.tar"
    if not tar.exists():
        if not Path("/usr/bin/mmdebstrap").exists():
            raise SystemExit("building the base image needs mmdebstrap: apt-get install mmdebstrap")
        cache.mkdir(parents=True, exist_ok=True)
        partial = tar.with_suffix(".partial.tar")
        subprocess.run(
            [
                "mmdebstrap",
                *RECIPE,
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(partial),
                str(sources),
            ],
            check=True,
        )
        partial.rename(tar)
    return tar


def image_name(sources: Path = SOURCES) -> str:
    """The base image's name in buildah's storage, which its recipe decides."""
    return f"localhost/berth-base:{SUITE}-{key(sources)}"


def base_image(cache: Path, sources: Path = SOURCES) -> str:
    """The base image in buildah's storage, imported from the tarball once per recipe."""
    name = image_name(sources)
    if not image_exists(name):
        tar = rootfs(cache, sources)
        container = buildah("from", "scratch")
        try:
            buildah("add", container, str(tar), "/")
            buildah(
                "config", "--cmd", "python3", "--label", f"dev.berth.base={key(sources)}", container
            )
            buildah("commit", "--rm", container, name)
        except BaseException:
            buildah("rm", container)
            raise
    return name
