"""Conditions as the Kubernetes API conventions define them, with stable transition times."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from berth_operator.api.modeldeployment import Condition

CACHE_READY = "CacheReady"
PODS_READY = "PodsReady"
RUNTIME_READY = "RuntimeReady"
READY = "Ready"
# kstatus (Flux, kpt) reads Stalled=True as "failed: needs a person", not "still in progress".
STALLED = "Stalled"
# True: an older resource holds this one's served model name in the gateway
MODEL_NAME_CONFLICT = "ModelNameConflict"
# an ASR model paired with a diarization model: whether speakers can be added to its transcripts
DIARIZATION_READY = "DiarizationReady"
# LoRA adapters: whether every one loaded was trained on the served model
ADAPTERS_MATCH_BASE = "AdaptersMatchBase"
CONDITION_ORDER = (
    READY,
    CACHE_READY,
    PODS_READY,
    RUNTIME_READY,
    STALLED,
    MODEL_NAME_CONFLICT,
    DIARIZATION_READY,
    ADAPTERS_MATCH_BASE,
)
#: conditions whose True is the problem: False is their quiet, normal state
ABNORMAL_TRUE = frozenset({STALLED, MODEL_NAME_CONFLICT})


@dataclass(frozen=True)
class Verdict:
    """A condition's status, reason and message, before it gets its timestamps."""

    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str

    @property
    def ok(self) -> bool:
        return self.status == "True"


def merge_conditions(
    previous: list[Condition] | None,
    verdicts: dict[str, Verdict],
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """New conditions; lastTransitionTime moves only when a condition's status changes."""
    before = {c.type: c for c in previous or []}
    merged = []
    for type_ in sorted(verdicts, key=lambda t: ((*CONDITION_ORDER, t)).index(t)):
        verdict = verdicts[type_]
        old = before.get(type_)
        changed = old is None or old.status != verdict.status or not old.last_transition_time
        merged.append(
            {
                "type": type_,
                "status": verdict.status,
                "reason": verdict.reason,
                "message": verdict.message,
                "lastTransitionTime": now if changed else old.last_transition_time,
                "observedGeneration": generation,
            }
        )
    return merged
