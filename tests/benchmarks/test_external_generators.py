"""benchmarks/external.py against the real no-op server: wrk and h2load run, their output is
read, and the server's CPU is attributed to it (a parse error or a wrong pid would show)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks import external, profile
from tf_serving_platform.servectl.engine_process import free_port


@pytest.fixture(scope="module")
def noop_server():
    grpc_port, rest_port = free_port(), free_port()
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.noop_server", str(grpc_port),
                                str(rest_port)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        yield process.pid, grpc_port, rest_port
    finally:
        process.kill()
        process.wait()


def test_wrk_measures_the_server(noop_server) -> None:
    pid, _, rest_port = noop_server
    measured = external.wrk(f"http://127.0.0.1:{rest_port}/v1/models/m:predict",
                            b'{"instances": [1.0]}', 2, 1, pid)
    assert measured.requests > 0 and measured.errors == 0
    assert 0 < measured.latency_ms["p50"] <= measured.latency_ms["p99"]
    assert measured.server_cpu_s > 0 and 0 < measured.busy <= 1
    assert measured.rss_mb > 1


def test_h2load_measures_the_server(noop_server) -> None:
    pid, grpc_port, _ = noop_server
    measured = external.h2load(f"127.0.0.1:{grpc_port}", b"", 2, 1, pid)
    assert measured.requests > 0 and measured.errors == 0
    assert 0 < measured.latency_ms["mean"] <= measured.latency_ms["max"]
    assert measured.server_cpu_s > 0
    assert set(measured.row()) >= {"throughput", "server_cpu_us_per_request", "machine_busy"}


def test_profile_attributes_the_servers_cpu_to_its_handler(noop_server, tmp_path) -> None:
    """benchmarks/profile.py: py-spy samples the no-op server while wrk drives it; its REST
    handler shows among the functions, and no function costs more than all of the CPU."""
    pid, _, rest_port = noop_server

    def drive(seconds: float) -> external.Measured:
        return external.wrk(f"http://127.0.0.1:{rest_port}/v1/models/m:predict", b"{}", 4,
                            seconds, pid)
    measured, by_total, by_self = profile.profile_under_load(pid, drive, 2, tmp_path / "s.txt")
    assert measured.requests > 0
    names = [row[0] for row in by_total]
    assert "serve.<locals>.rest (noop_server.py)" in names
    assert max(float(row[2]) for row in by_total) <= measured.cpu_us_per_request + 0.1
    assert {row[0] for row in by_self} <= set(names)
