"""How long to wait before restarting a child process that died: ``servectl serve --workers``'
engines and the engine's own front-end processes follow the same rule.

A child that keeps dying soon after its start waits longer each time (1 s doubling to 30 s), so
that a crash loop does not eat the machine; one that lived ``HEALTHY_AFTER_S`` starts the
back-off from its beginning again.
"""

from __future__ import annotations

import signal
import time

BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
"""Delay before restarting a child after its 1st, 2nd, ... consecutive quick death."""
HEALTHY_AFTER_S = 60.0


class RestartBackoff:
    """The restart delays of one child."""

    def __init__(self):
        self.deaths = 0
        self.started = time.monotonic()

    def started_now(self) -> None:
        self.started = time.monotonic()

    def died(self) -> float:
        """Count a death; the delay before the next start."""
        self.deaths = 1 if time.monotonic() - self.started > HEALTHY_AFTER_S else self.deaths + 1
        return BACKOFF_S[min(self.deaths, len(BACKOFF_S)) - 1]


def describe_exit(status: int) -> str:
    """A child's exit status in words: ``exit 3``, ``signal SIGKILL``."""
    return f"signal {signal.Signals(-status).name}" if status < 0 else f"exit {status}"
