"""Where the engine's CPU goes per request: py-spy over every process of the engine while wrk
(REST) or h2load (gRPC) drives it.

    python -m benchmarks.profile --model digits_mlp --protocol grpc --concurrency 32

Exports the zoo model, starts ``servectl serve`` (batching 64, timeout 0, one batch thread per
core), drives it for ``--duration`` seconds while ``py-spy record`` samples every process of
its tree, and prints the functions that hold the most samples: by their own time (``self``) and
with what they call (``total``), in microseconds of CPU per request. The raw stacks are kept in
``--out`` (``profile-<model>-<protocol>.txt``, py-spy's collapsed format: a flame graph tool
reads it).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks import external
from benchmarks.arguments import add_model_and_out, benchmark_parser
from benchmarks.loadgen import predict_path
from benchmarks.run import export, payloads, start_engine
from tf_serving_platform.serving.tables import format_table

SAMPLES_PER_S = 250


def collapsed_totals(lines: list[str]) -> tuple[collections.Counter, collections.Counter, int]:
    """(self samples, total samples, all samples) by function, from py-spy's raw format
    (``frame;frame;... count``, the leaf last; a function counts once per stack in total)."""
    own, total, samples = collections.Counter(), collections.Counter(), 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_function(f) for f in stack.split(";")]
        n = int(count)
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    return own, total, samples


def _function(frame: str) -> str:
    """``name (path/file.py:line)`` -> ``name (file.py)``: one entry per function, not per
    line."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.rpartition(':')[0]).name})" if where else name


def py_spy() -> str:
    """py-spy from PATH, or beside this interpreter (a venv that was not activated)."""
    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("py-spy is missing (pip install py-spy)")
    return found


def profile_under_load(pid: int, drive: Callable[[float], external.Measured], seconds: float,
                       stacks: Path) -> tuple[external.Measured, list[list[str]], list[list[str]]]:
    """Sample ``pid`` and its children with py-spy while ``drive(seconds)`` loads them; the
    load measured, and the top functions by total and by self as table rows (µs CPU a
    request: each function's share of the samples times the measured CPU per request).

    Python frames only: py-spy's ``--native`` mode counts threads waiting on a lock as busy.
    """
    recorder = subprocess.Popen([py_spy(), "record", "--pid", str(pid), "--subprocesses",
                                 "--format", "raw", "--rate", str(SAMPLES_PER_S),
                                 "--nonblocking", "--duration", str(int(seconds)),
                                 "--output", str(stacks)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    measured = drive(seconds + 1)  # outlasts the recording
    if recorder.wait() != 0:
        raise SystemExit(f"py-spy failed: {recorder.stderr.read().strip()}")
    own, total, samples = collapsed_totals(stacks.read_text().splitlines())
    request_us_per_sample = measured.cpu_us_per_request / max(samples, 1)
    by_total = [[name, f"{own[name] * request_us_per_sample:.1f}",
                 f"{count * request_us_per_sample:.1f}"] for name, count in total.most_common()]
    by_self = [[name, f"{count * request_us_per_sample:.1f}"] for name, count in own.most_common()]
    return measured, by_total, by_self


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    add_model_and_out(parser)
    parser.add_argument("--protocol", choices=("rest", "grpc"), default="grpc")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--frontend-processes", type=int, default=1)
    parser.add_argument("--batching", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    external.require_tools()
    py_spy()
    args.out.mkdir(parents=True, exist_ok=True)
    stacks = args.out / f"profile-{args.model}-{args.protocol}.txt"
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        grpc_body, rest_body = payloads(args.model, export(args.model, base)[1])
        engine = start_engine(base, args.model, args.batching, 64,
                              frontend_processes=args.frontend_processes)
        pid = engine.process.pid

        def drive(seconds: float) -> external.Measured:
            if args.protocol == "rest":
                return external.wrk(engine.rest_url + predict_path(args.model),
                                    rest_body, args.concurrency, seconds, pid)
            return external.h2load(f"127.0.0.1:{engine.grpc_port}", grpc_body,
                                   args.concurrency, seconds, pid)
        try:
            drive(2)  # warm up
            measured, by_total, by_self = profile_under_load(pid, drive, args.duration, stacks)
        finally:
            engine.kill()
    print(f"{args.model} {args.protocol} c={args.concurrency}: "
          f"{measured.throughput:,.0f} req/s, {measured.cpu_us_per_request:.0f} µs CPU/request; "
          f"stacks in {stacks}")
    print(format_table(["function (by total)", "self µs/req", "total µs/req"],
                       by_total[:args.top]))
    print(format_table(["function (by self)", "self µs/req"], by_self[:args.top]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
