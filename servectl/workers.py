"""``servectl serve --workers N``: N engine processes sharing the same ports (SO_REUSEPORT).

One Python process serves from one core at a time (the GIL); its front ends, not TensorFlow,
are the bound for small models (benchmarks/RESULTS.md). N processes, each a full engine with the
same flags, let the kernel spread connections across them. Each loads its own copy of the
models and batches on its own; the supervisor forwards SIGTERM/SIGINT and exits with the worst
status of its workers.
"""

from __future__ import annotations

import signal
import subprocess
import sys


def _worker_argv(argv: list[str]) -> list[str]:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg.split("=", 1)[0] == "--workers":
            skip = "=" not in arg
        else:
            kept.append(arg)
    return [sys.executable, "-m", "servectl.cli", "serve", *kept, "--workers=1"]


def run_workers(count: int, argv: list[str]) -> int:
    """Start ``count`` engines with ``argv`` and supervise them until they all exit."""
    workers = [subprocess.Popen(_worker_argv(argv)) for _ in range(count)]

    def forward(signum, _frame):
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    statuses = [worker.wait() for worker in workers]
    # A worker stopped by the signal we forwarded (before its own handler ran) stopped as asked.
    return max((0 if s in (-signal.SIGTERM, -signal.SIGINT) else s for s in statuses), key=abs)
