"""Paced clients for the day-2 soak: each target gets requests at a fixed rate, each on a new
connection, every outcome kept with the event it happened in; bounded by a deadline of its own.

Open loop: a request starts on schedule whether or not the earlier ones have answered, as
independent clients do, so a slow server is seen as latency and failures, not as fewer requests.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

#: seconds a request may take before it counts as failed
REQUEST_TIMEOUT = 120.0


@dataclass(frozen=True)
class Target:
    """Requests to one model: `short` (path, body, headers) at `per_second`, with every
    `long_every`-th request the `long` one (seconds in flight), when given."""

    name: str
    url: str
    short: tuple[str, bytes, dict[str, str]]
    per_second: float
    long: tuple[str, bytes, dict[str, str]] | None = None
    long_every: int = 10


@dataclass
class Outcome:
    target: str
    event: str
    started: float
    seconds: float
    status: int  # 0: no answer (connection error, timeout)
    error: str = ""

    @property
    def failed(self) -> bool:
        return not 200 <= self.status < 300


@dataclass
class Figures:
    """What one event's window saw, for one target."""

    requests: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def p(self, percent: float) -> float:
        return percentile(self.latencies, percent)


def percentile(values: list[float], percent: float) -> float:
    """The nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, round(percent / 100 * len(ordered) + 0.5)) - 1
    return ordered[min(rank, len(ordered) - 1)]


def send(url: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """One POST on a new connection: its status and, when it failed, why."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        if 200 <= response.status < 300:
            return response.status, ""
        return response.status, answer[:300].decode(errors="replace")
    except (OSError, http.client.HTTPException) as error:
        return 0, repr(error)
    finally:
        connection.close()


class Traffic:
    """`with traffic.running():` sends to every target until the block ends (or `max_seconds`
    pass); `with traffic.event(name):` marks the requests started meanwhile."""

    def __init__(self, targets: list[Target], max_seconds: float) -> None:
        self.targets = targets
        self.max_seconds = max_seconds
        self.outcomes: list[Outcome] = []
        self.events: list[tuple[str, float]] = []  # (name, seconds it took)
        self._event = "start"
        self._stop = threading.Event()
        self._lock = threading.Lock()

    @contextmanager
    def running(self) -> Iterator[Traffic]:
        pool = ThreadPoolExecutor(max_workers=256, thread_name_prefix="client")
        pacers = [threading.Thread(target=self._pace, args=(t, pool)) for t in self.targets]
        for pacer in pacers:
            pacer.start()
        try:
            yield self
        finally:
            self._stop.set()
            for pacer in pacers:
                pacer.join()
            pool.shutdown(wait=True)  # the requests in flight finish (each is bounded)

    @contextmanager
    def event(self, name: str) -> Iterator[None]:
        """The requests started during the block count for `name`."""
        started = time.monotonic()
        self._event = name
        try:
            yield
        finally:
            self.events.append((name, time.monotonic() - started))
            self._event = "between"

    def _pace(self, target: Target, pool: ThreadPoolExecutor) -> None:
        deadline = time.monotonic() + self.max_seconds
        interval = 1.0 / target.per_second
        due = time.monotonic()
        count = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            count += 1
            long = target.long is not None and count % target.long_every == 0
            request = target.long if long and target.long else target.short
            pool.submit(self._one, target, request)
            due += interval
            self._stop.wait(max(0.0, due - time.monotonic()))

    def _one(self, target: Target, request: tuple[str, bytes, dict[str, str]]) -> None:
        event, started = self._event, time.monotonic()
        status, error = send(target.url, *request)
        outcome = Outcome(target.name, event, started, time.monotonic() - started, status, error)
        with self._lock:
            self.outcomes.append(outcome)

    def figures(self) -> dict[tuple[str, str], Figures]:
        """(event, target) -> its figures, events in the order they happened."""
        found: dict[tuple[str, str], Figures] = {}
        for name in dict.fromkeys(["start", *(n for n, _ in self.events), "between"]):
            for target in self.targets:
                found[(name, target.name)] = Figures()
        for outcome in self.outcomes:
            figures = found[(outcome.event, outcome.target)]
            figures.requests += 1
            figures.latencies.append(outcome.seconds)
            if outcome.failed:
                figures.failures.append(f"{outcome.status} {outcome.error}".strip())
        return {key: value for key, value in found.items() if value.requests}

    def table(self) -> str:
        """One line per event and target: requests, failures, p50 and p99, the event's length;
        then the commonest reasons of the failures."""
        took = dict(self.events)
        lines = [
            f"{'event':<28}{'model':<13}{'requests':>9}{'failed':>8}{'p50 s':>8}{'p99 s':>8}"
            f"{'took s':>8}"
        ]
        for (event, target), figures in self.figures().items():
            length = f"{took[event]:.0f}" if event in took else ""
            lines.append(
                f"{event:<28}{target:<13}{figures.requests:>9}{len(figures.failures):>8}"
                f"{figures.p(50):>8.2f}{figures.p(99):>8.2f}{length:>8}"
            )
        for (event, target), figures in self.figures().items():
            for reason, count in Counter(f[:160] for f in figures.failures).most_common(3):
                lines.append(f"  {event} / {target}: {count} x {reason}")
        return "\n".join(lines)
