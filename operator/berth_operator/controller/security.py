"""Pod and container security contexts that pass the restricted Pod Security Standard."""

from __future__ import annotations

from typing import Any

#: the user (and group) every Berth image runs as (their Dockerfiles' USER)
RUN_AS_USER = 65532


#: pod spec fields: the pod's pause process is the PID namespace's init, so Berth's process is
#: not; the kernel spares an init every signal it has no handler for, and a model server
#: importing its engine's libraries would otherwise ignore SIGTERM until its grace ran out
SIGNALS_REACH_THE_ENTRY_POINT: dict[str, Any] = {"shareProcessNamespace": True}


def restricted_pod_security() -> dict[str, Any]:
    """Non-root with a fixed uid, and fsGroup so the cache volume is writable where needed."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_container_security() -> dict[str, Any]:
    """No privilege escalation, no capabilities, read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }
