"""The local registry (Debian's docker-registry) on 127.0.0.1:5000, and what a registry holds."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

LOCAL = "127.0.0.1:5000"
MANIFESTS = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  addr: {address}
"""


def is_local(registry: str) -> bool:
    """Whether images go to the local plain-HTTP registry rather than a real one."""
    return registry.split("/", 1)[0] in (LOCAL, f"localhost:{LOCAL.split(':')[1]}")


def _answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=1):
            return True
    except (urllib.error.URLError, OSError):
        return False


def ensure_local(state: Path, address: str = LOCAL) -> None:
    """Starts docker-registry on `address` unless a registry answers there; it keeps running."""
    if _answers(address):
        return
    binary = shutil.which("docker-registry")
    if binary is None:
        raise SystemExit(
            "the local registry needs Debian's docker-registry: apt-get install docker-registry"
        )
    state.mkdir(parents=True, exist_ok=True)
    (state / "config.yml").write_text(CONFIG.format(data=state / "data", address=address))
    with open(state / "registry.log", "ab") as log:
        process = subprocess.Popen(
            [binary, "serve", str(state / "config.yml")],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (state / "registry.pid").write_text(f"{process.pid}\n")
    deadline = time.monotonic() + 10
    while not _answers(address):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(
                f"docker-registry did not start on {address}: see {state / 'registry.log'}"
            )
        time.sleep(0.1)


def stop_local(state: Path) -> None:
    """Stops the registry that ensure_local started (its pid file), keeping its data."""
    pid_file = state / "registry.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), 15)
        pid_file.unlink()


def manifest_digest(reference: str) -> str | None:
    """The digest a plain-HTTP registry serves for host/repository:tag; None when it has none."""
    host, rest = reference.split("/", 1)
    repository, tag = rest.rsplit(":", 1)
    request = urllib.request.Request(
        f"http://{host}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": MANIFESTS},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.headers.get("Docker-Content-Digest")
    except (urllib.error.URLError, OSError):
        return None


def tag(reference: str, new_tag: str) -> str:
    """Gives the image at host/repository:tag in a plain-HTTP registry a second tag (the same
    manifest, so the same digest); returns the new reference."""
    host, rest = reference.split("/", 1)
    repository, old_tag = rest.rsplit(":", 1)
    manifests = f"http://{host}/v2/{repository}/manifests"
    found = urllib.request.Request(f"{manifests}/{old_tag}", headers={"Accept": MANIFESTS})
    with urllib.request.urlopen(found, timeout=30) as answer:
        manifest, media_type = answer.read(), answer.headers["Content-Type"]
    put = urllib.request.Request(
        f"{manifests}/{new_tag}", data=manifest, method="PUT", headers={"Content-Type": media_type}
    )
    with urllib.request.urlopen(put, timeout=30):
        pass
    return f"{host}/{repository}:{new_tag}"


def layers(reference: str) -> dict[str, int]:
    """The image's layers in a plain-HTTP registry: digest -> compressed size (of its amd64 image
    where the tag names an index)."""
    host, rest = reference.split("/", 1)
    repository, tag = rest.rsplit(":", 1)
    manifest = _manifest(host, repository, tag)
    if "manifests" in manifest:  # an index: its amd64 image
        chosen = next(
            m for m in manifest["manifests"] if m.get("platform", {}).get("architecture") == "amd64"
        )
        manifest = _manifest(host, repository, chosen["digest"])
    return {layer["digest"]: layer["size"] for layer in manifest["layers"]}


def _manifest(host: str, repository: str, reference: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://{host}/v2/{repository}/manifests/{reference}", headers={"Accept": MANIFESTS}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
