"""The model server's state as status.runtime shows it: Loading, Ready or Failed, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from berth_runtime.clock import utcnow


@dataclass
class RuntimeState:
    pod: str | None = None
    state: str = "Loading"
    #: while Loading, the step the engine is at, in its own words
    progress: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    dependencies: dict[str, Any] = field(default_factory=dict)
    last_error: dict[str, Any] | None = None
    load_seconds: float | None = None
    #: the engine failed beyond recovery while serving: the pod is to be restarted
    broken: bool = False

    @property
    def ready(self) -> bool:
        return self.state == "Ready"

    @property
    def loading_progress(self) -> str | None:
        """The load step status.runtime shows: none once the load is over."""
        return self.progress if self.state == "Loading" else None

    def break_down(self, reason: str, message: str) -> None:
        """A fatal engine error while serving: Failed, and the liveness probe fails too."""
        self.fail(reason, message)
        self.broken = True

    def fail(self, reason: str, message: str) -> None:
        self.state = "Failed"
        self.last_error = {
            "time": utcnow(),
            "reason": reason,
            "message": message[:2000],
            "pod": self.pod,
        }

    def as_status(self) -> dict[str, Any]:
        """status.runtime (camelCase), GPU telemetry in compact form."""
        return {
            "state": self.state,
            "pod": self.pod,
            "updatedAt": utcnow(),
            "progress": self.loading_progress,
            "details": self.details,
            "dependencies": {k: v for k, v in self.dependencies.items() if k != "gpus"},
            "gpus": [
                {
                    k: g[k]
                    for k in (
                        "index",
                        "name",
                        "memoryUsedMiB",
                        "memoryTotalMiB",
                        "utilizationPercent",
                        "temperatureC",
                    )
                }
                for g in self.dependencies.get("gpus", [])
            ],
            "lastError": self.last_error,
        }

    def as_api(self) -> dict[str, Any]:
        """GET /api/status (snake_case, as the earlier gateway answered)."""
        return {
            "state": self.state,
            "details": self.details,
            "dependencies": self.dependencies,
            "last_error": self.last_error,
        }
