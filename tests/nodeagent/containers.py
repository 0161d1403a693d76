"""One container of a pod as a local process: its argv, environment, paths, probes and restarts."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.cluster.processes import die_with_parent
from tests.nodeagent.images import LocalImage

VARIABLE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
LOG_TAIL_BYTES = 2048


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command, args and env values."""
    return VARIABLE.sub(lambda m: env.get(m.group(1), m.group(0)), text)


@dataclass
class Probe:
    """An HTTP probe and its running tally."""

    spec: dict[str, Any]
    url: str
    successes: int = 0
    failures: int = 0
    last_run: float = 0.0

    def due(self, started: float, clock: float) -> bool:
        if clock - started < self.spec.get("initialDelaySeconds", 0):
            return False
        return clock - self.last_run >= self.spec.get("periodSeconds", 10)

    def run(self, clock: float) -> bool:
        """One probe; True when it succeeded. Updates the tally."""
        self.last_run = clock
        try:
            timeout = self.spec.get("timeoutSeconds", 1)
            with urllib.request.urlopen(self.url, timeout=timeout) as reply:
                ok = 200 <= reply.status < 400
        except (urllib.error.URLError, OSError, ValueError):
            ok = False
        if ok:
            self.successes, self.failures = self.successes + 1, 0
        else:
            self.successes, self.failures = 0, self.failures + 1
        return ok

    @property
    def failed(self) -> bool:
        return self.failures >= self.spec.get("failureThreshold", 3)


@dataclass
class ContainerProcess:
    """Runs one container spec again and again, as its pod's restart policy says."""

    spec: dict[str, Any]
    image: LocalImage
    env: dict[str, str]
    workdir: Path
    pod_ip: str
    restart_policy: str
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    started_time: str = ""
    restarts: int = 0
    ready: bool = False
    started: bool = False
    state: dict[str, Any] = field(default_factory=dict)
    last_state: dict[str, Any] = field(default_factory=dict)
    backoff_until: float = 0.0
    probes: dict[str, Probe] = field(default_factory=dict)
    finished: bool = False

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def termination_file(self) -> Path:
        return self.workdir / f"{self.name}.termination-log"

    def argv(self) -> list[str]:
        command = self.spec.get("command") or list(self.image.entrypoint)
        args = self.spec.get("args") or []
        argv = [expand(part, self.env) for part in [*command, *args]]
        found = shutil.which(argv[0], path=self.env.get("PATH"))
        return [found or argv[0], *argv[1:]]

    def start(self) -> None:
        self.termination_file.unlink(missing_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv(),
                env=self.env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # own process group; dies with the agent
            )
        self.started_at, self.started_time = time.monotonic(), now()
        self.state = {"running": {"startedAt": self.started_time}}
        self.ready = self.started = False
        self.probes = {
            kind: Probe(self.spec[kind], self._probe_url(self.spec[kind]))
            for kind in ("startupProbe", "readinessProbe", "livenessProbe")
            if kind in self.spec and "httpGet" in self.spec[kind]
        }
        self.started = "startupProbe" not in self.probes

    def _probe_url(self, probe: dict[str, Any]) -> str:
        http = probe["httpGet"]
        port = http["port"]
        if isinstance(port, str):
            port = next(p["containerPort"] for p in self.spec.get("ports", []) if p["name"] == port)
        return f"http://{self.pod_ip}:{port}{http.get('path', '/')}"

    def stop(self, grace: float) -> None:
        """SIGTERM to the process group, SIGKILL after `grace` seconds."""
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def _termination_message(self, code: int) -> str:
        message = ""
        if self.termination_file.exists():
            message = self.termination_file.read_text(errors="replace")[:4096]
        if (
            not message
            and code
            and self.spec.get("terminationMessagePolicy") == ("FallbackToLogsOnError")
        ):
            with self.log.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
                message = log.read().decode(errors="replace")
        return message

    def step(self, clock: float) -> None:
        """Notices an exit, restarts after a back-off, runs the probes that are due."""
        if self.finished:
            return
        if self.popen is None:
            if clock >= self.backoff_until:
                try:
                    self.start()
                except OSError as error:  # as a runtime's StartError: no such executable, ...
                    self._exited(127, clock, f"failed to start the container: {error}")
            return
        code = self.popen.poll()
        if code is not None:
            self._exited(code, clock)
            return
        self._probe(clock)

    def _exited(self, code: int, clock: float, start_error: str | None = None) -> None:
        signalled = code < 0
        exit_code = 128 - code if signalled else code
        terminated = {
            "exitCode": exit_code,
            "reason": "StartError" if start_error else "Completed" if exit_code == 0 else "Error",
            "startedAt": self.started_time or now(),
            "finishedAt": now(),
            "containerID": f"local://{self.popen.pid if self.popen else 0}",
        }
        if message := start_error or self._termination_message(exit_code):
            terminated["message"] = message
        self.popen, self.ready = None, False
        restart = self.restart_policy == "Always" or (
            self.restart_policy == "OnFailure" and exit_code != 0
        )
        if not restart:
            self.state, self.finished = {"terminated": terminated}, True
            return
        self.last_state = {"terminated": terminated}
        self.restarts += 1
        delay = min(10.0, 2.0 ** min(self.restarts - 1, 4))  # the kubelet's back-off, shortened
        self.backoff_until = clock + delay
        self.state = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {delay:.0f}s restarting failed container {self.name}",
            }
        }

    def _probe(self, clock: float) -> None:
        startup = self.probes.get("startupProbe")
        if not self.started and startup:
            if startup.due(self.started_at, clock) and startup.run(clock):
                self.started = True
            elif startup.failed:
                self.stop(grace=5)
            return
        if (live := self.probes.get("livenessProbe")) and live.due(self.started_at, clock):
            live.run(clock)
            if live.failed:
                self.stop(grace=5)
                return
        ready = self.probes.get("readinessProbe")
        if ready is None:
            self.ready = True
        elif ready.due(self.started_at, clock):
            ready.run(clock)
            if ready.successes >= ready.spec.get("successThreshold", 1):
                self.ready = True
            elif ready.failed:
                self.ready = False

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.spec["image"],
            "imageID": f"local://{self.image.bin_dir}",
            "ready": self.ready,
            "started": self.started and self.popen is not None,
            "restartCount": self.restarts,
            "state": self.state,
        }
        if self.popen is not None:
            status["containerID"] = f"local://{self.popen.pid}"
        if self.last_state:
            status["lastState"] = self.last_state
        return status
