"""Progress watchdog: notices when the engine stops making progress, so health tells the truth.

Workers that cannot die are the first defence (batch threads, the manager and the pollers catch
everything and answer their callers). This is the second: if work stops moving anyway, liveness,
readiness and gRPC health turn unhealthy with the reason, the reason is logged once, and
``:platform:stalled{component}`` is 1, so that Kubernetes restarts the pod.

With the bound ``B`` (``--stall_timeout_seconds``), the engine is stalled when

* a model run (on the model executor, or a batch) has been running longer than ``B``
  (component ``model_run``);
* a batch queue holds a task older than ``batch_timeout_micros + B`` and no batch started or
  finished within ``B`` (``batch_queue``);
* a worker thread that must always run is gone (``thread``).

A stall that clears (the run finally returned) makes the engine healthy again.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tf_serving_platform.serving import logger
from tf_serving_platform.serving.engine.metrics import Metrics

log = logger(__name__)
COMPONENTS = ("model_run", "batch_queue", "thread")


@dataclass(frozen=True)
class Stall:
    """Why the engine is not making progress."""

    component: str
    """One of :data:`COMPONENTS`: the metric's label."""
    reason: str
    """One line for the log and the health answers."""


class ModelRuns:
    """Every model call passes through here: timed as ``runtime_latency`` and tracked while it
    runs, so that a call that never returns is seen."""

    def __init__(self, metrics: Metrics):
        self._metrics = metrics
        self._tokens = itertools.count()
        self._running: dict[int, tuple[float, object, str]] = {}

    def call(self, servable, api: str, fn: Callable, *args):
        """``fn(*args)`` for ``servable``, timed and tracked."""
        token = next(self._tokens)
        self._running[token] = (time.monotonic(), servable, api)  # described only if stuck
        try:
            return self._metrics.timed_run(servable.name, api, servable.kind, fn, *args)
        finally:
            del self._running[token]

    def in_flight(self) -> int:
        return len(self._running)

    def stall(self, now: float, bound_s: float) -> Stall | None:
        started, servable, api = min(self._running.copy().values(), key=lambda run: run[0],
                                     default=(now, None, ""))
        if now - started > bound_s:
            return Stall("model_run", f"a model run ({servable.name} version "
                                      f"{servable.version} {api}) has been running for "
                                      f"{now - started:.0f}s (bound {bound_s:g}s)")
        return None


class Watchdog:
    """Runs the stall checks; logs and counts each change of verdict once."""

    def __init__(self, bound_s: float, metrics: Metrics,
                 checks: list[Callable[[float, float], Stall | None]]):
        """``bound_s`` <= 0 turns the watchdog off. Each check gets ``(now, bound_s)``."""
        self._bound_s, self._metrics, self._checks = bound_s, metrics, list(checks)
        self._threads: list[threading.Thread] = []
        self._last: Stall | None = None
        self._lock = threading.Lock()
        self.stopping = False
        """Set at shutdown: threads that stop then are not a stall."""
        for component in COMPONENTS:
            metrics.stalled.labels(component).set(0)

    def watch_threads(self, *threads: threading.Thread | None) -> None:
        """Threads that must run until shutdown (None is skipped: a poller that is off)."""
        self._threads.extend(t for t in threads if t is not None)

    def _dead_thread(self) -> Stall | None:
        dead = [t.name for t in self._threads if not t.is_alive()]
        if dead and not self.stopping:
            return Stall("thread", f"worker thread {', '.join(dead)} is not running")
        return None

    def check(self) -> Stall | None:
        """The current stall, if any (cheap: called by every health probe)."""
        if self._bound_s <= 0:
            return None
        now = time.monotonic()
        stall = self._dead_thread() or next(
            (s for check in self._checks if (s := check(now, self._bound_s))), None)
        with self._lock:
            previous, self._last = self._last, stall
        if stall != previous:
            self._report(previous, stall)
        return stall

    def _report(self, previous: Stall | None, stall: Stall | None) -> None:
        if previous is not None and (stall is None or stall.component != previous.component):
            self._metrics.stalled.labels(previous.component).set(0)
        if stall is None:
            log.warning("the engine makes progress again")
            return
        if previous is None or stall.component != previous.component:
            self._metrics.stalled.labels(stall.component).set(1)
            self._metrics.stalls.labels(stall.component).inc()
            log.error("the engine is stalled, health now fails: %s", stall.reason)
