"""A small JSON client of the Kubernetes API for the node agent: requests, and watches."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status


class KubeApi:
    """Talks to one API server with a bearer token, as the kubelet talks to it."""

    def __init__(self, server: str, token: str, ca_file: str) -> None:
        self.server, self.token = server, token
        self.context = ssl.create_default_context(cafile=ca_file)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=timeout) as reply:
                return json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, error.read().decode(errors="replace")) from None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, MERGE_PATCH)

    def watch(self, path: str, resource_version: str, timeout: int = 60) -> Iterator[dict]:
        """Events of a watch from `resource_version`, until the server ends it."""
        separator = "&" if "?" in path else "?"
        url = (
            f"{self.server}{path}{separator}watch=1&resourceVersion={resource_version}"
            f"&allowWatchBookmarks=true&timeoutSeconds={timeout}"
        )
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, context=self.context, timeout=timeout + 10) as stream:
            for line in stream:
                if line.strip():
                    yield json.loads(line)
