"""The API server's audit log, kept for the operator's writes only: what a test or benchmark
counts when it asks how often the operator wrote, and to what."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

#: the user the operator runs as on a test control plane (a static token in system:masters)
OPERATOR_USER = "berth-operator"
WRITE_VERBS = ["create", "update", "patch", "delete", "deletecollection"]


def write_policy(path: Path) -> Path:
    """An audit policy that records the operator's writes, at Metadata level, once each."""
    policy = {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived", "ResponseStarted", "Panic"],
        "rules": [
            {"level": "Metadata", "users": [OPERATOR_USER], "verbs": WRITE_VERBS},
            {"level": "None"},
        ],
    }
    path.write_text(yaml.safe_dump(policy))
    return path


@dataclass(frozen=True)
class Write:
    """One write the API server answered: how, and what it touched."""

    verb: str
    #: the resource, with its subresource when there is one (`modeldeployments/status`)
    resource: str
    name: str


def operator_writes(log: Path, offset: int = 0) -> list[Write]:
    """The operator's writes recorded in `log` after byte `offset`."""
    if not log.exists():
        return []
    with log.open("rb") as f:
        f.seek(offset)
        lines = f.read().splitlines()
    writes = []
    for line in lines:
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        resource = ref.get("resource", "")
        if sub := ref.get("subresource"):
            resource = f"{resource}/{sub}"
        writes.append(Write(verb=event["verb"], resource=resource, name=ref.get("name", "")))
    return writes


def by_resource(writes: list[Write]) -> Counter[str]:
    """How many writes each resource (and subresource) received."""
    return Counter(w.resource for w in writes)
