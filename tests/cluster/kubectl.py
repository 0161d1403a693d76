"""A kubectl bound to one namespace, and waiting on any object with a message that shows what it saw."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import yaml

from tests.cluster.controlplane import ControlPlane


class WaitTimeout(AssertionError):
    """A wait ran out of time; the message shows the object as last seen."""


def condition_is(
    type_: str, status: str = "True", reason: str | None = None
) -> Callable[[dict], bool]:
    """A predicate: the object has condition `type_` with `status` (and `reason`, if given)."""

    def check(obj: dict) -> bool:
        for condition in obj.get("status", {}).get("conditions", []) or []:
            if condition.get("type") == type_ and condition.get("status") == status:
                return reason is None or condition.get("reason") == reason
        return False

    check.__name__ = f"condition {type_}={status}" + (f" reason={reason}" if reason else "")
    return check


class Kubectl:
    """Runs the cluster's kubectl in `namespace`; returns parsed objects where it can."""

    def __init__(self, plane: ControlPlane, namespace: str) -> None:
        self.plane = plane
        self.namespace = namespace

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return self.plane.kubectl(
            "-n", self.namespace, *args, input=input, check=check, timeout=timeout
        )

    def apply(
        self, *manifests: dict[str, Any], check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self("apply", "-f", "-", input=yaml.safe_dump_all(manifests), check=check)

    def get(self, kind: str, name: str | None = None, *selector: str) -> dict[str, Any]:
        """One object, or a List when `name` is None."""
        args = [kind, name] if name else [kind, *selector]
        return json.loads(self("get", *args, "-o", "json").stdout)

    def wait_for(
        self,
        kind: str,
        name: str,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        timeout: float = 30,
        interval: float = 0.25,
        what: str | None = None,
    ) -> dict[str, Any]:
        """Polls `kind/name` until `predicate(obj)`; returns the object or raises WaitTimeout."""
        what = what or getattr(predicate, "__name__", "predicate")
        deadline = time.monotonic() + timeout
        last: str = "(never read)"
        while True:
            result = self("get", kind, name, "-o", "json", check=False)
            if result.returncode == 0:
                obj = json.loads(result.stdout)
                if predicate(obj):
                    return obj
                last = yaml.safe_dump(obj, sort_keys=False)
            else:
                last = result.stderr.strip()
            if time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"{kind}/{name} in {self.namespace}: no {what} after {timeout:.0f} s; "
                    f"last seen:\n{last}"
                )
            time.sleep(interval)


def table_rows(kubectl: Kubectl, kind: str) -> dict[str, dict[str, str]]:
    """`kubectl get KIND` as its user sees it: name -> {column: value}, cut at the header's
    column positions (empty cells stay empty)."""
    header, *lines = kubectl("get", kind).stdout.splitlines() or [""]
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]
    names = header.split()
    rows = {}
    for line in lines:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows[cells[0]] = dict(zip(names, cells, strict=True))
    return rows
