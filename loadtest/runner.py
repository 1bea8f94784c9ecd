"""Runs ``loadtest/locustfile.py`` in a Locust child process, headless, and waits for it.

Locust runs in its own process because importing it monkey-patches the standard library
(gevent: sockets, threads, ``time.sleep``) for the whole interpreter; ``servectl`` stays a
plain Python process that only reads what Locust wrote. Locust's output goes to
``OUT/locust.log``; its CSV and HTML reports, the raw samples and the stage schedule land in
``OUT`` too.

How many Locust processes: each one is a single gevent loop, so it can use at most one core.
The default is one per two cores of this machine (at least one): a load test here usually
shares the machine with the server it measures, and a generator that takes every core measures
its own contention. With one process Locust runs its local runner (no master, no ZeroMQ
statistics traffic); with more it forks a master and N workers (``--processes N``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from tf_serving_platform.loadtest.options import LocustfileOptions
from tf_serving_platform.loadtest.stages import SCHEDULE_FILE, Stage

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
GRACE_S = 120.0
"""How long past its planned end a run may take (start-up, ramp-up) before it is stopped."""


def default_processes() -> int:
    """One Locust process per two cores, at least one (see the module docstring)."""
    return max(1, (os.cpu_count() or 1) // 2)


@dataclass(frozen=True)
class LocustRun:
    """One headless Locust run of the locustfile.

    Attributes:
        options: what the locustfile reads (target, payload, shape, samples, SLO gate).
        rest: REST base URL (runs ``RestUser``), or None; ``options.grpc_target`` runs
            ``GrpcUser``.
        stages: the shape, already planned (for the progress estimate).
        users: peak users (Locust's ``-u``).
        spawn_rate: users started per second (Locust's ``-r``).
        processes: Locust processes sending requests (1: local runner).
        out: output directory.
    """

    options: LocustfileOptions
    rest: str | None
    stages: list[Stage]
    users: int
    spawn_rate: float
    processes: int
    out: Path

    @property
    def grpc(self) -> str | None:
        """gRPC ``HOST:PORT``, or None."""
        return self.options.grpc_target or None

    @property
    def samples_dir(self) -> Path:
        """Where each Locust process writes its raw samples."""
        return Path(self.options.samples_dir)

    def planned_seconds(self) -> float:
        """Measured time plus ramp-up and one stage-clock tick per stage."""
        return sum(s.seconds + s.users / s.spawn_rate + 1.0 for s in self.stages)

    def argv(self) -> list[str]:
        """The Locust command line."""
        args = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
                "--only-summary", "-u", str(self.users), "-r", f"{self.spawn_rate:g}",
                "--csv", str(self.out / "locust"), "--html", str(self.out / "locust.html"),
                *self.options.argv()]
        if self.processes > 1:
            args += ["--processes", str(self.processes)]
        if self.rest:
            args += ["--host", self.rest]
        return args + [c for c, on in (("RestUser", self.rest), ("GrpcUser", self.grpc)) if on]


def _clear(directory: Path) -> None:
    """Removes a previous run's samples, so they never mix into this one's."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in [*directory.glob("samples-*.npz"), directory / SCHEDULE_FILE]:
        old.unlink(missing_ok=True)


def run(config: LocustRun, report_on_interrupt: bool = False) -> int:
    """Runs Locust to completion, with a progress bar on a terminal; returns its exit code.

    A run that outlives its plan by ``GRACE_S`` is stopped with SIGINT, Locust's Ctrl-C: it then
    still writes its reports and samples (on SIGTERM it died at once here: exit -15, nothing
    written). Ctrl-C stops Locust the same way, then re-raises, or with
    ``report_on_interrupt`` returns, so that the caller reports on what ran.
    """
    _clear(config.samples_dir)
    planned = config.planned_seconds()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRPC_VERBOSITY": "ERROR"}
    with open(config.out / "locust.log", "w") as log, \
            tqdm(total=round(planned), unit="s", desc="load test", disable=None,
                 file=sys.stderr, leave=False) as bar:
        process = subprocess.Popen(config.argv(), stdout=log, stderr=subprocess.STDOUT, env=env)
        started = time.monotonic()
        try:
            while process.poll() is None:
                elapsed = time.monotonic() - started
                if elapsed > planned + GRACE_S:
                    process.send_signal(signal.SIGINT)
                    return process.wait()
                bar.update(min(round(elapsed), bar.total) - bar.n)
                time.sleep(0.25)
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)
            process.wait()
            if not report_on_interrupt:
                raise
            print("interrupted: load stopped; the report covers what ran", file=sys.stderr)
    return process.returncode


def log_tail(out: Path, lines: int = 5) -> str:
    """The last lines of Locust's log, for a failed run's message."""
    path = out / "locust.log"
    text = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return "\n".join(text[-lines:])
