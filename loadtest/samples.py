"""Raw per-request samples: recorded in every Locust process, read back by the report.

Each Locust process that sends requests (the only process, or each worker of
``--processes``) keeps one row per request from ``events.request``: start time, latency in
float milliseconds (Locust measures with ``perf_counter``, so microseconds are real), success
and protocol. It also keeps its own CPU time between ``test_start`` and ``test_stop``, which
tells whether the generator rather than the server was the bottleneck. Rows are buffered in
memory (a few bytes each) and written once per stop, as ``samples-<role>-<pid>.npz``, so the
hot loop never touches the disk.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROTOCOLS = {"POST": "rest", "gRPC": "grpc"}
"""Locust ``request_type`` -> protocol: FastHttpUser reports the HTTP method, gRPC its own."""


class Recorder:
    """An ``events.request`` / ``test_start`` / ``test_stop`` listener set for one process."""

    def __init__(self, directory: Path, role: str) -> None:
        self.directory = Path(directory)
        self.role = role
        self._start: list[float] = []
        self._latency: list[float] = []
        self._ok: list[bool] = []
        self._protocol: list[str] = []
        self._cpu_started: float | None = None
        self._wall_started = 0.0
        self._cpu = self._wall = 0.0

    def on_request(self, request_type: str, response_time: float, exception=None,
                   start_time: float | None = None, **_: object) -> None:
        """Keeps one request (Locust's ``events.request`` signature)."""
        self._start.append(start_time if start_time is not None
                           else time.time() - response_time / 1000)
        self._latency.append(response_time)
        self._ok.append(exception is None)
        self._protocol.append(PROTOCOLS.get(request_type, request_type))

    def on_test_start(self, **_: object) -> None:
        """Starts the CPU clock of this process."""
        self._cpu_started = time.process_time()
        self._wall_started = time.monotonic()

    def on_test_stop(self, **_: object) -> None:
        """Adds the CPU time since ``on_test_start`` and writes everything recorded so far."""
        if self._cpu_started is not None:
            self._cpu += time.process_time() - self._cpu_started
            self._wall += time.monotonic() - self._wall_started
            self._cpu_started = None
        self.write()

    def write(self) -> Path:
        """Writes (atomically) this process's samples file; later writes replace it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"samples-{self.role}-{os.getpid()}.npz"
        partial = path.with_suffix(".partial.npz")
        np.savez(partial, start=np.array(self._start, np.float64),
                 latency_ms=np.array(self._latency, np.float64), ok=np.array(self._ok, bool),
                 protocol=np.array(self._protocol, dtype="U8"), role=np.array(self.role),
                 cpu_s=np.array(self._cpu), wall_s=np.array(self._wall))
        partial.replace(path)
        return path


@dataclass(frozen=True)
class ProcessUsage:
    """CPU a Locust process used during the test: ``cpu_s`` over ``wall_s`` seconds."""

    role: str
    pid: int
    cpu_s: float
    wall_s: float

    @property
    def cores(self) -> float:
        """CPU seconds per wall second; one gevent process can never go past 1.0."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


@dataclass(frozen=True)
class Samples:
    """Every request of a run (one array element per request) and each process's CPU use."""

    start: np.ndarray
    latency_ms: np.ndarray
    ok: np.ndarray
    protocol: np.ndarray
    processes: tuple[ProcessUsage, ...]

    @property
    def done(self) -> np.ndarray:
        """Completion time of each request (Unix seconds)."""
        return self.start + self.latency_ms / 1000

    def select(self, mask: np.ndarray) -> Samples:
        """The requests where ``mask`` is True."""
        return Samples(self.start[mask], self.latency_ms[mask], self.ok[mask],
                       self.protocol[mask], self.processes)


def load(directory: Path) -> Samples:
    """Reads and merges every process's samples file in ``directory``, ordered by start time."""
    files = sorted(Path(directory).glob("samples-*-*[0-9].npz"))
    parts = [np.load(f) for f in files]
    processes = tuple(ProcessUsage(str(p["role"]), int(f.stem.rsplit("-", 1)[1]),
                                   float(p["cpu_s"]), float(p["wall_s"]))
                      for f, p in zip(files, parts, strict=True))

    def joined(key: str, dtype) -> np.ndarray:
        return np.concatenate([p[key] for p in parts]) if parts else np.array([], dtype)

    start = joined("start", np.float64)
    order = np.argsort(start, kind="stable")
    return Samples(start[order], joined("latency_ms", np.float64)[order],
                   joined("ok", bool)[order], joined("protocol", "U8")[order], processes)
