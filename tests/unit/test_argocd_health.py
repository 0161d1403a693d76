"""The Argo CD health check (doc/gitops/argocd-health.lua), run by a real Lua 5.1 interpreter."""

from pathlib import Path

import pytest
from lupa import lua51

SCRIPT = Path(__file__).resolve().parents[2] / "doc" / "gitops" / "argocd-health.lua"


def health(obj: dict) -> dict:
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    check = lua.eval(f"function(obj)\n{SCRIPT.read_text()}\nend")
    result = check(lua.table_from(obj, recursive=True))
    return {"status": result["status"], "message": result["message"]}


def md(generation: int = 2, **status) -> dict:
    return {"metadata": {"name": "m", "generation": generation}, "status": status}


def ready(status: str, reason: str, message: str = "words") -> list[dict]:
    return [{"type": "Ready", "status": status, "reason": reason, "message": message}]


@pytest.mark.parametrize(
    ("obj", "expected", "words"),
    [
        ({"metadata": {"name": "m", "generation": 1}}, "Progressing", "observe the latest spec"),
        (
            md(observedGeneration=1, phase="Ready", conditions=ready("True", "ModelServing")),
            "Progressing",
            "latest spec",
        ),
        (
            md(
                observedGeneration=2,
                phase="Ready",
                conditions=ready("True", "ModelServing", "1/1 replicas ready"),
            ),
            "Healthy",
            "1/1 replicas ready",
        ),
        (
            md(observedGeneration=2, phase="Stopped", conditions=ready("True", "ScaledToZero")),
            "Suspended",
            "Scaled to 0",
        ),
        (
            md(
                observedGeneration=2,
                phase="Failed",
                conditions=ready("False", "AuthRequired", "set tokenSecretRef"),
            ),
            "Degraded",
            "AuthRequired: set tokenSecretRef",
        ),
        (
            md(
                observedGeneration=2,
                phase="Degraded",
                conditions=ready("False", "CrashLoopBackOff"),
            ),
            "Degraded",
            "CrashLoopBackOff",
        ),
        (
            md(
                observedGeneration=2,
                phase="Downloading",
                conditions=ready("False", "Downloading", "42%"),
            ),
            "Progressing",
            "Downloading: 42%",
        ),
    ],
)
def test_health(obj: dict, expected: str, words: str):
    result = health(obj)
    assert result["status"] == expected
    assert words in result["message"]
