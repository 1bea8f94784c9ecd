"""The one answer to "alive?" and "ready?", given by the REST probes and ``grpc.health.v1`` alike.

* Alive (``/healthz``): the engine makes progress (:mod:`serving.engine.watchdog`). A stalled
  engine fails liveness so that Kubernetes restarts it; one whose event loop is blocked cannot
  answer at all, which fails the probe too.
* Ready (``/readyz``, gRPC SERVING): alive, not shutting down, at least one model configured and
  every configured model has an AVAILABLE version (a model whose versions were all deleted, or
  unloaded by a reload, has none).
"""

from __future__ import annotations

from collections.abc import Callable

from tf_serving_platform.serving.engine.watchdog import Watchdog


class Health:
    def __init__(self, models_available: Callable[[], bool], watchdog: Watchdog):
        self._models_available, self._watchdog = models_available, watchdog
        self.shutting_down = False

    def not_alive(self) -> str | None:
        """Why liveness fails, or None."""
        stall = self._watchdog.check()
        return stall.reason if stall else None

    def not_ready(self) -> str | None:
        """Why readiness fails, or None."""
        if self.shutting_down:
            return "shutting down"
        stalled = self.not_alive()
        if stalled:
            return stalled
        return None if self._models_available() else \
            "no model is configured, or not every configured model is available"
