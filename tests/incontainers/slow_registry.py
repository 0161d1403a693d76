"""A slow way to the local registry, so a pull lasts long enough to be watched: a TCP proxy
that paces what the registry sends, and an image of fresh random bytes no node holds yet."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import socket
import tarfile
import threading
import time
import urllib.request
from types import TracebackType

CHUNK = 64 * 1024


class ThrottledProxy:
    """Forwards 127.0.0.1:<port> to `upstream`, sending the answers at `bytes_per_second`."""

    def __init__(self, upstream: tuple[str, int], bytes_per_second: int) -> None:
        self.upstream, self.rate = upstream, bytes_per_second
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._stopped = threading.Event()
        self._open: list[socket.socket] = []

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> ThrottledProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopped.set()
        self.listener.close()
        for end in self._open:  # idle keep-alive connections end too
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self._open += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(
                target=self._pipe, args=(server, client, self.rate), daemon=True
            ).start()

    def _pipe(self, source: socket.socket, target: socket.socket, rate: int | None) -> None:
        started, sent = time.monotonic(), 0
        try:
            while not self._stopped.is_set() and (data := source.recv(CHUNK)):
                target.sendall(data)
                sent += len(data)
                if rate:  # sleep until the bytes sent so far are due
                    time.sleep(max(0.0, sent / rate - (time.monotonic() - started)))
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _push_blob(registry: str, name: str, data: bytes) -> str:
    digest = _digest(data)
    start = urllib.request.Request(f"http://{registry}/v2/{name}/blobs/uploads/", method="POST")
    with urllib.request.urlopen(start, timeout=30) as reply:
        location = reply.headers["Location"]
    if location.startswith("/"):
        location = f"http://{registry}{location}"
    separator = "&" if "?" in location else "?"
    upload = urllib.request.Request(
        f"{location}{separator}digest={digest}",
        data=data,
        method="PUT",
        headers={"Content-Type": "application/octet-stream"},
    )
    urllib.request.urlopen(upload, timeout=120).close()
    return digest


def push_random_image(registry: str, name: str, tag: str, size: int) -> str:
    """Pushes an image of one layer holding `size` random bytes; returns its reference. Its
    command does not exist: it is for pulling, not for running."""
    content = io.BytesIO()
    with tarfile.open(fileobj=content, mode="w") as tar:
        entry = tarfile.TarInfo("noise")
        entry.size = size
        tar.addfile(entry, io.BytesIO(os.urandom(size)))
    layer = gzip.compress(content.getvalue(), compresslevel=1)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/noise"]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(content.getvalue())]},
        }
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _push_blob(registry, name, config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": _push_blob(registry, name, layer),
                "size": len(layer),
            }
        ],
    }
    put = urllib.request.Request(
        f"http://{registry}/v2/{name}/manifests/{tag}",
        data=json.dumps(manifest).encode(),
        method="PUT",
        headers={"Content-Type": manifest["mediaType"]},
    )
    urllib.request.urlopen(put, timeout=30).close()
    return f"{registry}/{name}:{tag}"
