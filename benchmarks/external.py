"""Drive a server with external load generators (wrk for REST, h2load for gRPC) and measure
what the server costs: its CPU per request, the machine's busy share, its resident memory.

The generators are C programs (Debian packages ``wrk`` and ``nghttp2-client``), so what they
measure is the server, not a Python client. h2load sends a unary gRPC call as an HTTP/2 POST
with a length-prefixed body, which is all a unary gRPC request is; it counts HTTP statuses, so
a gRPC error (carried in the trailers) is not an error to it: check the server's
``:tensorflow:serving:request_count`` for those.

    python -m benchmarks.external --pid PID --rest http://127.0.0.1:8501/v1/models/m:predict \
        --body body.json --grpc 127.0.0.1:8500 --request request.pb --levels 1,8,32,64
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import lifecycle
from benchmarks.arguments import add_sweep, benchmark_parser
from tf_serving_platform.servectl.engine_process import children

PREDICT_PATH = "/tensorflow.serving.PredictionService/Predict"
WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb")
wrk.body = f:read("*all")
f:close()
"""


@dataclass
class Measured:
    """One load level against one server."""

    tool: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latency_ms: dict[str, float]
    """wrk: ``p50`` and ``p99``; h2load reports only ``mean`` and ``max``."""
    server_cpu_s: float
    busy: float
    """The machine's busy share over the run (1.0: every core busy)."""
    rss_mb: float

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us_per_request(self) -> float:
        return self.server_cpu_s / max(self.requests, 1) * 1e6

    def row(self) -> dict:
        return {"tool": self.tool, "concurrency": self.concurrency,
                "throughput": round(self.throughput, 1),
                **{f"{k}_ms": v for k, v in self.latency_ms.items()}, "errors": self.errors,
                "server_cpu_us_per_request": round(self.cpu_us_per_request, 1),
                "server_cores": round(self.server_cpu_s / self.seconds, 2),
                "machine_busy": round(self.busy, 3), "server_rss_mb": round(self.rss_mb, 1)}


def require_tools() -> None:
    missing = [t for t in ("wrk", "h2load") if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"missing load generators: {' '.join(missing)} (apt-get install wrk "
                         "nghttp2-client, or make system-deps)")


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        found.append(current)
        frontier.extend(children(current))
    return found


def _tree_sum(pids: list[int], read) -> float:
    """``read(pid)`` summed over ``pids``; a process that exited meanwhile counts nothing."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, RuntimeError):
            total += read(pid)
    return total


def cpu_seconds(pids: list[int]) -> float:
    return _tree_sum(pids, lifecycle.cpu_seconds)


def rss_mb(pids: list[int]) -> float:
    """Resident memory of the tree (shared pages counted once per process: an upper bound)."""
    return _tree_sum(pids, lifecycle.rss_mb)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of every core since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    value, unit = match.groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def _measure(tool: str, command: list[str], server_pid: int, concurrency: int, seconds: float,
             parse) -> Measured:
    pids = process_tree(server_pid)
    cpu_before, (busy_before, total_before) = cpu_seconds(pids), machine_ticks()
    started = time.monotonic()
    output = subprocess.run(command, capture_output=True, text=True, check=True,
                            timeout=seconds + 60).stdout
    elapsed = time.monotonic() - started
    pids = process_tree(server_pid)
    cpu_after, (busy_after, total_after) = cpu_seconds(pids), machine_ticks()
    requests, errors, latency, measured_s = parse(output)
    return Measured(tool, concurrency, requests, errors, measured_s or elapsed, latency,
                    cpu_after - cpu_before, (busy_after - busy_before) /
                    max(total_after - total_before, 1), rss_mb(pids))


def wrk(url: str, body: bytes, concurrency: int, seconds: float, server_pid: int,
        threads: int = 1) -> Measured:
    """Closed-loop keep-alive POSTs of ``body`` to ``url``."""
    with tempfile.TemporaryDirectory() as tmp:
        body_file, script = Path(tmp, "body"), Path(tmp, "post.lua")
        body_file.write_bytes(body)
        script.write_text(WRK_SCRIPT.format(body=body_file))

        def parse(out: str):
            p50 = _milliseconds(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
            p99 = _milliseconds(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
            done = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
            requests, span = int(done.group(1)), _milliseconds(done.group(2) + done.group(3))
            bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            refused = int(bad.group(1)) if bad else 0
            sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                             r"timeout (\d+)", out)
            errors = refused + (sum(int(x) for x in sock.groups()) if sock else 0)
            return requests - refused, errors, {"p50": p50, "p99": p99}, span / 1e3
        return _measure("wrk", ["wrk", f"-t{min(threads, concurrency)}", f"-c{concurrency}",
                                f"-d{seconds:g}s", "--latency", "-s", str(script), url],
                        server_pid, concurrency, seconds, parse)


def h2load(address: str, request: bytes, concurrency: int, seconds: float, server_pid: int,
           threads: int = 1) -> Measured:
    """Closed-loop unary gRPC Predict calls of the serialized ``request`` to ``host:port``,
    one call at a time on each of ``concurrency`` HTTP/2 connections."""
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp, "body")
        body_file.write_bytes(b"\0" + len(request).to_bytes(4, "big") + request)

        def parse(out: str):
            done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, "
                             r"(\d+) failed, (\d+) errored", out)
            finished = re.search(r"finished in ([\d.]+)(\w+),", out)
            latency = re.search(r"time for request:\s+\S+\s+(\S+)\s+(\S+)", out)
            return (int(done.group(2)), int(done.group(3)) + int(done.group(4)),
                    {"mean": _milliseconds(latency.group(2)),
                     "max": _milliseconds(latency.group(1))},
                    _milliseconds(finished.group(1) + finished.group(2)) / 1e3)
        return _measure("h2load", [
            "h2load", f"-t{min(threads, concurrency)}", f"-c{concurrency}", "-m1",
            f"-D{seconds:g}", "-d", str(body_file), "-H", "content-type: application/grpc",
            "-H", "te: trailers", f"http://{address}{PREDICT_PATH}"],
            server_pid, concurrency, seconds, parse)


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--pid", type=int, required=True, help="the server process")
    parser.add_argument("--rest", help="REST predict URL (with --body: a JSON file)")
    parser.add_argument("--body", type=Path)
    parser.add_argument("--grpc", help="host:port (with --request: a serialized PredictRequest)")
    parser.add_argument("--request", type=Path)
    add_sweep(parser, levels="1,8,32,64", duration=5.0)
    args = parser.parse_args(argv)
    require_tools()
    for level in args.levels:
        if args.rest:
            print(json.dumps(wrk(args.rest, args.body.read_bytes(), level, args.duration,
                                 args.pid).row()), flush=True)
        if args.grpc:
            print(json.dumps(h2load(args.grpc, args.request.read_bytes(), level, args.duration,
                                    args.pid).row()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
