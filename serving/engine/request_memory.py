"""The memory budget of requests in flight, and memory handed back after a burst.

Each request reserves, before its tensors are decoded, what decoding it will take: a gRPC
request the bytes its tensors declare; a REST request ``JSON_PARSE_FACTOR`` times its body (the
Python objects a JSON document becomes: measured 15x for a list of floats, 24x for strings, 38x
for deeply nested lists). A request that would take the total past the budget is refused with
RESOURCE_EXHAUSTED (HTTP 429) before anything is allocated, so a burst of large requests, or a
few hostile ones, cannot take the memory of the models that serve everyone.

glibc keeps freed pages for reuse: after a burst the process would stay at its peak. So when the
requests in flight have all finished and they had reached ``TRIM_AFTER_BYTES`` since the last
trim, the freed pages are returned to the OS (``malloc_trim``, on a thread: it can take a few
milliseconds for gigabytes).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from tf_serving_platform.serving import logger
from tf_serving_platform.serving.engine import memory
from tf_serving_platform.serving.engine.ledger import Ledger
from tf_serving_platform.serving.engine.metrics import Metrics
from tf_serving_platform.serving.errors import ServingError

log = logger(__name__)

JSON_PARSE_FACTOR = 40
"""Bytes of memory one byte of a REST JSON body may become while it is parsed and decoded."""
TRIM_AFTER_BYTES = 64 << 20
AUTO_SHARE = 4
"""The automatic budget: a quarter of the memory this process may use."""
CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def available_memory() -> int:
    """The memory this process may use: its cgroup's limit (a container's) or the machine's."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in CGROUP_LIMITS:
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            return min(total, int(text))
    return total


def budget_bytes(configured: int) -> int:
    """``--request_memory_budget_bytes``: 0 is automatic, a negative value no budget."""
    if configured == 0:
        return available_memory() // AUTO_SHARE
    return configured if configured > 0 else 0


class RequestMemory:
    """Reservations of memory by the requests in flight, against one budget (0: no limit).

    Called from the event loop only; the trim runs on its own thread. With a ``ledger`` the
    budget is shared with the server's other processes (``--frontend_processes``); ``in_use``
    is this process's part.
    """

    def __init__(self, budget: int, metrics: Metrics, ledger: Ledger | None = None):
        self.budget = budget
        self._metrics = metrics
        self._ledger = ledger
        self.in_use = 0
        self._peak_since_trim = 0
        self._trimming = threading.Lock()
        if ledger is None or ledger.created:  # the ledger's creator reports every process's
            metrics.refreshers.append(lambda: metrics.request_memory.set(
                self.in_use if ledger is None else ledger.total()))

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        """Hold ``nbytes`` for the body of the ``with``; RESOURCE_EXHAUSTED if over budget."""
        refused_at = self._take(nbytes)
        if refused_at is not None:
            self._metrics.request_memory_refused.inc()
            raise ServingError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"The request needs {nbytes} bytes of memory; the server's budget for requests "
                f"in flight ({self.budget} bytes, {refused_at} in use) cannot hold it now")
        self.in_use += nbytes
        self._peak_since_trim = max(self._peak_since_trim, self.in_use)
        try:
            yield
        finally:
            self.in_use -= nbytes
            if self._ledger is not None:
                self._ledger.subtract(nbytes)
            if self.in_use == 0 and self._peak_since_trim >= TRIM_AFTER_BYTES:
                self._peak_since_trim = 0
                self._trim_soon()

    def _take(self, nbytes: int) -> int | None:
        """Held: None; refused: the bytes in use that refused it."""
        if self._ledger is not None:
            return self._ledger.try_add(nbytes, self.budget or sys.maxsize)
        if self.budget and self.in_use + nbytes > self.budget:
            return self.in_use
        return None

    def _trim_soon(self) -> None:
        if self._trimming.acquire(blocking=False):
            threading.Thread(target=self._trim, name="malloc-trim", daemon=True).start()

    def _trim(self) -> None:
        try:
            memory.trim()
        finally:
            self._trimming.release()
