"""A local Hugging Face hub: serves generated repos to the real huggingface_hub client.

It answers like the hub does where the client looks: model info with sha and siblings (sizes
and LFS sha256 with ?blobs=true), the recursive tree listing (huggingface_hub 1.x and later
list files there), resolve with ETag / X-Linked-Etag, X-Repo-Commit and
Content-Length, Range requests, and 401/403/404 with the hub's X-Error-Code. Faults on
demand: throttling, a disconnect or a stall after some bytes, an error status for everything.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from aiohttp import web


@dataclass
class Faults:
    """Misbehaviour, for every download request."""

    bytes_per_second: float | None = None
    disconnect_after: int | None = None  # bytes of one response, then the connection drops
    stall_after: int | None = None  # bytes of one response, then nothing more is sent
    status: int | None = None  # answer every request with this status


@dataclass
class HubRepo:
    """A model repository: files by path; `lfs` paths are served as LFS (sha256 ETags)."""

    repo_id: str
    files: dict[str, bytes]
    lfs: set[str] = field(default_factory=set)
    gated: bool = False
    private: bool = False
    tokens: set[str] = field(default_factory=set)
    branches: dict[str, str] = field(default_factory=dict)
    claimed_sizes: dict[str, int] = field(default_factory=dict)  # size announced, if not true
    corrupt: set[str] = field(default_factory=set)  # served with one byte flipped
    faults: Faults | None = None  # this repo's own misbehaviour, over the hub's
    cdn: str | None = None  # LFS files redirect to <cdn>/<repo_id>/<path>, as the hub's do

    def __post_init__(self) -> None:
        listing = "".join(
            f"{p}:{hashlib.sha1(c).hexdigest()}" for p, c in sorted(self.files.items())
        )
        self.commit = hashlib.sha1(f"{self.repo_id}/{listing}".encode()).hexdigest()
        self.branches.setdefault("main", self.commit)

    def etag(self, path: str) -> str:
        if path in self.lfs:
            return hashlib.sha256(self.files[path]).hexdigest()
        return self.git_oid(path)

    def git_oid(self, path: str) -> str:
        content = self.files[path]
        return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()

    def size(self, path: str) -> int:
        return self.claimed_sizes.get(path, len(self.files[path]))

    def body(self, path: str) -> bytes:
        content = self.files[path]
        if path in self.corrupt:
            return bytes([content[0] ^ 0xFF]) + content[1:]
        return content


class LocalHub:
    """The server, on `host` (loopback unless pods must reach it) in a thread of its own;
    `endpoint` goes into HF_ENDPOINT."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.repos: dict[str, HubRepo] = {}
        self.faults = Faults()
        self.bytes_sent = 0
        self.responses: list[dict[str, Any]] = []  # file responses: path, first byte, bytes sent
        self.requests: list[tuple[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._release: asyncio.Event | None = None  # set on stop: stalled responses end
        self.port = 0

    def add(self, repo: HubRepo) -> HubRepo:
        self.repos[repo.repo_id] = repo
        return repo

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LocalHub:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)
        if self._runner:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _start(self) -> None:
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_get("/api/models/{org}/{name}/revision/{revision}", self.model_info)
        app.router.add_get("/api/models/{org}/{name}/tree/{revision}", self.tree)
        app.router.add_route("*", "/{org}/{name}/resolve/{revision}/{path:.+}", self.resolve)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    # ---- the hub's answers ------------------------------------------------------------------

    @staticmethod
    def _error(status: int, code: str, message: str) -> web.Response:
        return web.json_response(
            {"error": message},
            status=status,
            headers={"X-Error-Code": code, "X-Error-Message": message},
        )

    def _authorize(self, request: web.Request) -> tuple[HubRepo | None, web.Response | None]:
        repo_id = f"{request.match_info['org']}/{request.match_info['name']}"
        self.requests.append((request.method, request.path))
        repo = self.repos.get(repo_id)
        if status := self._faults(repo).status:
            return None, web.json_response({"error": "injected"}, status=status)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if repo is None or (repo.private and token not in repo.tokens):
            status = 404 if token else 401
            return None, self._error(
                status, "RepoNotFound", f"Repository Not Found for url: {request.url}."
            )
        if repo.gated and token not in repo.tokens:
            status = 403 if token else 401
            return None, self._error(
                status, "GatedRepo", f"Access to model {repo_id} is restricted."
            )
        return repo, None

    def _faults(self, repo: HubRepo | None) -> Faults:
        return (repo.faults if repo is not None else None) or self.faults

    def _commit(self, repo: HubRepo, revision: str) -> str | None:
        if revision in repo.branches:
            return repo.branches[revision]
        return revision if revision == repo.commit else None

    async def model_info(self, request: web.Request) -> web.Response:
        repo, error = self._authorize(request)
        if error:
            return error
        assert repo is not None
        commit = self._commit(repo, request.match_info["revision"])
        if commit is None:
            return self._error(
                404, "RevisionNotFound", f"Invalid rev id: {request.match_info['revision']}"
            )
        blobs = request.query.get("blobs", "").lower() in ("true", "1")
        siblings: list[dict[str, Any]] = []
        for path in sorted(repo.files):
            entry: dict[str, Any] = {"rfilename": path}
            if blobs:
                entry |= {"size": repo.size(path), "blobId": repo.etag(path)}
                if path in repo.lfs:
                    entry["lfs"] = {
                        "sha256": repo.etag(path),
                        "size": repo.size(path),
                        "pointerSize": 134,
                    }
            siblings.append(entry)
        info = {
            "_id": commit[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "sha": commit,
            "private": repo.private,
            "gated": "auto" if repo.gated else False,
            "disabled": False,
            "tags": [],
            "siblings": siblings,
        }
        return web.json_response(info)

    async def tree(self, request: web.Request) -> web.Response:
        """The recursive listing of a revision's files (one page: no Link header)."""
        repo, error = self._authorize(request)
        if error:
            return error
        assert repo is not None
        if self._commit(repo, request.match_info["revision"]) is None:
            return self._error(
                404, "RevisionNotFound", f"Invalid rev id: {request.match_info['revision']}"
            )
        entries: list[dict[str, Any]] = []
        folders = sorted(
            {str(p) for path in repo.files for p in PurePosixPath(path).parents} - {"."}
        )
        entries += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in folders]
        for path in sorted(repo.files):
            entry: dict[str, Any] = {
                "type": "file",
                "oid": repo.git_oid(path),
                "size": repo.size(path),
                "path": path,
            }
            if path in repo.lfs:
                entry["lfs"] = {"oid": repo.etag(path), "size": repo.size(path), "pointerSize": 134}
            entries.append(entry)
        return web.json_response(entries)

    async def resolve(self, request: web.Request) -> web.StreamResponse:
        repo, error = self._authorize(request)
        if error:
            return error
        assert repo is not None
        commit = self._commit(repo, request.match_info["revision"])
        path = request.match_info["path"]
        if commit is None:
            return self._error(
                404, "RevisionNotFound", f"Invalid rev id: {request.match_info['revision']}"
            )
        if path not in repo.files:
            return self._error(404, "EntryNotFound", f"{path} does not exist on {commit}")
        body = repo.body(path)
        etag = f'"{repo.etag(path)}"'
        headers = {"X-Repo-Commit": commit, "ETag": etag, "Accept-Ranges": "bytes"}
        if path in repo.lfs:
            headers |= {"X-Linked-Etag": etag, "X-Linked-Size": str(repo.size(path))}
        start, end = 0, len(body) - 1
        if range_header := request.headers.get("Range"):
            first, _, last = range_header.removeprefix("bytes=").partition("-")
            start, end = int(first), min(int(last) if last else end, end)
        if repo.cdn and path in repo.lfs:
            location = f"{repo.cdn}/{repo.repo_id}/{path}"
            return web.Response(status=302, headers={**headers, "Location": location})
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(len(body))})
        chunk = body[start : end + 1]
        status = 206 if range_header else 200
        if range_header:
            headers["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
        response = web.StreamResponse(
            status=status, headers={**headers, "Content-Length": str(len(chunk))}
        )
        await response.prepare(request)
        await self._send(request, response, chunk, self._faults(repo))
        return response

    async def _send(
        self, request: web.Request, response: web.StreamResponse, data: bytes, faults: Faults
    ) -> None:
        sent, piece = 0, 64 * 1024
        record = {"path": request.path, "start": request.http_range.start or 0, "sent": 0}
        self.responses.append(record)
        while sent < len(data):
            if faults.stall_after is not None and sent >= faults.stall_after:
                assert self._release is not None
                await self._release.wait()
                return
            if faults.disconnect_after is not None and sent >= faults.disconnect_after:
                assert request.transport is not None
                request.transport.close()
                return
            block = data[sent : sent + piece]
            await response.write(block)
            sent += len(block)
            self.bytes_sent += len(block)
            record["sent"] = sent
            if faults.bytes_per_second:
                await asyncio.sleep(len(block) / faults.bytes_per_second)
