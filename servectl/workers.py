"""``servectl serve --workers N``: N engine processes sharing the same ports (SO_REUSEPORT).

One Python process serves from one core at a time (the GIL); its front ends, not TensorFlow,
are the bound for small models (benchmarks/RESULTS.md). N processes, each a full engine with the
same flags, let the kernel spread connections across them. Each loads its own copy of the
models and batches on its own.

The supervisor restarts a worker that dies while serving (a crash, the OOM killer), after a
back-off that grows while it keeps dying; a worker that fails its start (exit 255: a model that
cannot load) is not retried, the others are stopped and the supervisor exits 255, as one engine
would. SIGTERM/SIGINT are forwarded; the exit status is the worst of the workers'.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tf_serving_platform.servectl import command
from tf_serving_platform.serving.engine.restarts import RestartBackoff, describe_exit

EXIT_START_FAILED = 255
SUPERVISE_INTERVAL_S = 0.2


def _worker_argv(argv: list[str]) -> list[str]:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg.split("=", 1)[0] == "--workers":
            skip = "=" not in arg
        else:
            kept.append(arg)
    # Each worker is a whole engine in one process unless the command line says otherwise.
    return command("serve", "--frontend_processes=1", *kept, "--workers=1")


class _Worker:
    def __init__(self, argv: list[str]):
        self._argv = argv
        self._backoff = RestartBackoff()
        self.restart_at: float | None = None
        self.process = self._start()

    def _start(self) -> subprocess.Popen:
        self._backoff.started_now()
        return subprocess.Popen(self._argv)

    def died(self, status: int) -> None:
        """Schedule the restart of a worker that died while serving."""
        delay = self._backoff.died()
        print(f"servectl serve: worker {self.process.pid} died ({describe_exit(status)}); "
              f"restarting it in {delay:g}s", file=sys.stderr, flush=True)
        self.restart_at = time.monotonic() + delay

    def restart_if_due(self) -> None:
        if self.restart_at is not None and time.monotonic() >= self.restart_at:
            self.restart_at = None
            self.process = self._start()


def run_workers(count: int, argv: list[str]) -> int:
    """Start ``count`` engines with ``argv`` and supervise them until they are told to stop."""
    workers = [_Worker(_worker_argv(argv)) for _ in range(count)]
    stopping: list[int] = []

    def forward(signum, _frame):
        stopping.append(signum)
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signum)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while not stopping:
        for worker in workers:
            status = worker.process.poll()
            if status is None or worker.restart_at is not None:
                worker.restart_if_due()
            elif status == EXIT_START_FAILED:
                forward(signal.SIGTERM, None)
                break
            elif not stopping:
                worker.died(status)
        time.sleep(SUPERVISE_INTERVAL_S)
    # A worker waiting for its restart was dealt with already: it does not count again.
    statuses = [0 if worker.restart_at is not None else worker.process.wait()
                for worker in workers]
    # A worker stopped by the signal we forwarded (before its own handler ran) stopped as asked.
    return max((0 if s in (-signal.SIGTERM, -signal.SIGINT) else s for s in statuses), key=abs)
