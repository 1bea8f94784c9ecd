"""Chaos with real tools and clients: h2load, wrk and Locust stopped mid-run, gRPC channels
closed with requests queued, HTTP clients that hang up mid-body or while they wait, bursts of
cancelled RPCs, thousands of idle connections, a huge body sent slowly.

Every case runs against an engine with batching on and one with batching off, and is followed
by :func:`assert_recovered`: readiness and liveness say 200, gRPC health says SERVING, the first
normal request is answered within a second, and the median latency of the next ones is normal
(within :func:`normal_bound` of what the engine answered before any chaos). The engine's log
holds no traceback when it stops. ``RELIABILITY_REPORT_DIR=DIR`` writes the figures of each case to
``DIR/chaos_last_run.json`` (RELIABILITY.md, "Chaos").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests.helpers import (
    linear_predict,
    linear_request,
    metric,
    monitoring_flag,
    send,
    serving,
    wait_until,
    write_report,
)
from tests.model_builders import save_linear
from tf_serving_platform.servectl import command
from tf_serving_platform.servectl.engine_process import EngineProcess

# The batching of issue 12's wedge: two batch threads, batches of up to 64.
WEDGE_BATCHING = """max_batch_size { value: 64 }
batch_timeout_micros { value: 1000 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: 2 }
"""
BUSY_WORK = 30  # rounds of a 256x256 matmul per request: a few ms, so requests pile up
FIGURES: dict[str, dict] = {}


@dataclass
class Chaos:
    engine: EngineProcess
    batching: bool
    baseline_s: float = 0.0
    """Median latency of a normal request before any chaos."""
    stub: object = None


def rest_body(work: int = 0, x: float = 1.0) -> bytes:
    return json.dumps({"inputs": {"x": [x], "work": [work]}}).encode()


def rest_predict(engine: EngineProcess, timeout: float = 10) -> float:
    """One normal REST predict; its latency (checked for the right answer)."""
    started = time.perf_counter()
    assert linear_predict(engine, 3.0, timeout=timeout) == (200, {"outputs": [3.0]})
    return time.perf_counter() - started


def grpc_predict(chaos: Chaos, timeout: float = 10) -> float:
    started = time.perf_counter()
    response = chaos.stub.Predict(linear_request(x=2.0), timeout=timeout)
    assert list(response.outputs["y"].float_val) == [2.0]
    return time.perf_counter() - started


def median_latency(chaos: Chaos, count: int = 10) -> float:
    """Of ``count`` REST and ``count`` gRPC predicts, alternating."""
    return statistics.median(latency for _ in range(count)
                             for latency in (rest_predict(chaos.engine), grpc_predict(chaos)))


def normal_bound(baseline_s: float) -> float:
    """What "normal latency" means after chaos: three times the baseline, or the baseline plus
    50 ms (a busy 2-core machine adds scheduling noise of that order, a wedge adds seconds)."""
    return max(3 * baseline_s, baseline_s + 0.05)


def grpc_health(chaos: Chaos) -> int:
    stub = health_pb2_grpc.HealthStub(chaos.engine.channel())
    return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status


def assert_recovered(chaos: Chaos, case: str, **figures) -> None:
    """Truthful health and normal answers at normal latency, right after the chaos."""
    engine = chaos.engine
    assert engine.process.poll() is None, engine.log()
    started = time.perf_counter()
    first = grpc_predict(chaos, timeout=1.0)  # the wedge made this wait for its deadline
    rest_predict(engine, timeout=1.0)
    first_answer_s = time.perf_counter() - started
    assert send(engine, "GET /readyz", timeout=5)[0] == 200
    assert send(engine, "GET /healthz", timeout=5)[0] == 200
    assert grpc_health(chaos) == health_pb2.HealthCheckResponse.SERVING
    median = median_latency(chaos)
    assert median <= normal_bound(chaos.baseline_s), (median, chaos.baseline_s)
    mode = "batching" if chaos.batching else "no batching"
    FIGURES[f"{case} ({mode})"] = {"first_answer_s": round(first_answer_s, 4),
                                   "first_grpc_s": round(first, 4),
                                   "median_after_ms": round(median * 1000, 2),
                                   "baseline_ms": round(chaos.baseline_s * 1000, 2), **figures}


def abandoned(engine: EngineProcess) -> float:
    return metric(engine.rest_url, ":platform:requests_abandoned")


@pytest.fixture(scope="module", params=[True, False], ids=["batching", "no_batching"])
def chaos(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("chaos")
    save_linear(folder / "linear" / "1", a=1.0, b=0.0)
    flags = ["--model_name=linear", f"--model_base_path={folder / 'linear'}",
             monitoring_flag(folder)]
    if request.param:
        (folder / "batching.config").write_text(WEDGE_BATCHING)
        flags += ["--enable_batching", f"--batching_parameters_file={folder / 'batching.config'}"]
    with serving(*flags) as engine:
        state = Chaos(engine, request.param)
        state.stub = prediction_service_pb2_grpc.PredictionServiceStub(engine.channel())
        median_latency(state, 3)  # first runs of a fresh session are slower
        state.baseline_s = median_latency(state)
        yield state
    log = engine.log()
    assert "Traceback" not in log and "InvalidStateError" not in log, log
    write_report("chaos_last_run.json", FIGURES)


# ---- gRPC clients that go away ----

async def _close_with_requests_in_flight(target: str, requests: int, close_after_s: float,
                                         work: int) -> None:
    channel = grpc.aio.insecure_channel(target)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    calls = [stub.Predict(linear_request(work), timeout=30) for _ in range(requests)]
    await asyncio.sleep(close_after_s)
    await channel.close()
    for call in calls:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            await call


def close_channels(target: str, clients: int, requests: int, close_after_s: float,
                   work: int = BUSY_WORK) -> None:
    async def all_clients():
        await asyncio.gather(*(_close_with_requests_in_flight(target, requests, close_after_s,
                                                              work) for _ in range(clients)))
    asyncio.run(all_clients())


def test_grpc_channels_closed_with_queued_requests_leave_the_engine_serving(chaos):
    """Issue 12's wedge: five clients, 64 requests each, channels closed 3 ms later (and, so
    that requests are surely queued, later rounds close once the engine holds them)."""
    engine = chaos.engine
    before = abandoned(engine)
    for close_after_s in (0.003, 0.003, 0.05, 0.2):
        close_channels(engine.grpc_target, clients=5, requests=64, close_after_s=close_after_s)
    dropped = abandoned(engine) - before
    assert dropped > 0  # requests were queued or running when their callers left
    assert_recovered(chaos, "gRPC channels closed with 64 requests each in flight",
                     clients=20, requests=1280, abandoned=dropped)


def test_bursts_of_cancelled_and_expiring_rpcs(chaos):
    engine = chaos.engine
    before = abandoned(engine)
    with engine.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for _ in range(3):
            calls = [stub.Predict.future(linear_request(BUSY_WORK), timeout=30)
                     for _ in range(200)]
            for call in calls:
                call.cancel()
            expiring = [stub.Predict.future(linear_request(BUSY_WORK), timeout=0.005)
                        for _ in range(200)]
            codes = {call.exception() and call.exception().code() for call in expiring}
            assert codes <= {None, grpc.StatusCode.DEADLINE_EXCEEDED}, codes
    assert_recovered(chaos, "bursts of cancelled and expiring RPCs", requests=1200,
                     abandoned=abandoned(engine) - before)


# ---- HTTP clients that hang up ----

def _raw_http(engine: EngineProcess, body_sent: bytes, content_length: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", engine.rest_port), timeout=10)
    conn.sendall(b"POST /v1/models/linear:predict HTTP/1.1\r\nHost: chaos\r\n"
                 b"Content-Type: application/json\r\n"
                 + f"Content-Length: {content_length}\r\n\r\n".encode() + body_sent)
    return conn


def test_http_clients_hanging_up_mid_body_and_while_waiting(chaos):
    engine = chaos.engine
    before = abandoned(engine)
    body = rest_body(work=BUSY_WORK)
    for _ in range(3):
        mid_body = [_raw_http(engine, body[: len(body) // 2], len(body)) for _ in range(50)]
        waiting = [_raw_http(engine, body, len(body)) for _ in range(100)]
        for conn in mid_body + waiting:
            conn.close()
    # The waiting ones were queued or running when they left: their handlers are cancelled.
    wait_until(lambda: abandoned(engine) > before, timeout=30)
    assert_recovered(chaos, "HTTP clients closing mid-body and while waiting",
                     mid_body=150, waiting=300, abandoned=abandoned(engine) - before)


def test_thousands_of_idle_connections_while_others_are_served(chaos):
    """Slowloris: 2,000 REST connections that sent half a request head and 500 gRPC
    connections that sent nothing stay open while normal clients are served."""
    engine = chaos.engine
    held = []
    try:
        for _ in range(2000):
            conn = socket.create_connection(("127.0.0.1", engine.rest_port), timeout=10)
            conn.sendall(b"POST /v1/models/linear:predict HTTP/1.1\r\nHost: slow")
            held.append(conn)
        held += [socket.create_connection(("127.0.0.1", engine.grpc_port), timeout=10)
                 for _ in range(500)]
        during = median_latency(chaos)
        assert during <= normal_bound(chaos.baseline_s), (during, chaos.baseline_s)
        assert send(engine, "GET /readyz", timeout=5)[0] == 200
    finally:
        for conn in held:
            conn.close()
    assert_recovered(chaos, "2,000 idle REST and 500 idle gRPC connections",
                     idle_connections=len(held), median_during_ms=round(during * 1000, 2))


def test_a_huge_body_sent_slowly_does_not_hold_other_clients(chaos):
    engine = chaos.engine
    total = 256 << 20
    stop = threading.Event()
    sent = []

    def trickle():
        conn = _raw_http(engine, b'{"inputs": {"x": [', total)
        chunk = b"1.0, " * (1 << 16)
        try:
            while not stop.is_set() and sum(sent) < total // 2:
                conn.sendall(chunk)
                sent.append(len(chunk))
                time.sleep(0.02)
        finally:
            conn.close()
    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        wait_until(lambda: sum(sent) > 8 << 20, timeout=60)
        during = median_latency(chaos)
    finally:
        stop.set()
        thread.join()
    assert during <= normal_bound(chaos.baseline_s), (during, chaos.baseline_s)
    assert_recovered(chaos, "a 256 MB body sent slowly, then dropped",
                     body_bytes_sent=sum(sent), median_during_ms=round(during * 1000, 2))


# ---- load tools stopped mid-run ----

def _kill_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
    process.wait(30)


def _run_tool(argv: list[str], engine: EngineProcess, stop_signal: int | None,
              wait_for_requests: int = 200) -> subprocess.CompletedProcess | None:
    """Run a load tool; with ``stop_signal``, send it once the engine has answered
    ``wait_for_requests`` requests, i.e. in the middle of the run."""
    if stop_signal is None:
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)
    before = metric(engine.rest_url, ":tensorflow:serving:request_count")
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        wait_until(lambda: metric(engine.rest_url, ":tensorflow:serving:request_count") - before
                   >= wait_for_requests, timeout=60)
    finally:
        _kill_group(process, stop_signal)
    return None


def _h2load_argv(engine: EngineProcess, body: Path, duration_s: int) -> list[str]:
    return ["h2load", "-D", str(duration_s), "-c", "16", "-m", "16", "-d", str(body),
            "-H", "content-type: application/grpc", "-H", "te: trailers",
            f"http://{engine.grpc_target}/tensorflow.serving.PredictionService/Predict"]


@pytest.mark.parametrize("stop", ["window ends", "SIGINT", "SIGKILL"])
def test_h2load_stopped_in_the_middle_of_a_run(chaos, tmp_path, stop):
    """h2load's gRPC load (HTTP/2 frames of a serialized PredictRequest) either ends its
    measurement window with requests in flight, or is interrupted or killed mid-run."""
    engine = chaos.engine
    message = linear_request(BUSY_WORK).SerializeToString()
    body = tmp_path / "predict.grpc"
    body.write_bytes(b"\0" + len(message).to_bytes(4, "big") + message)  # gRPC framing
    signum = {"SIGINT": signal.SIGINT, "SIGKILL": signal.SIGKILL}.get(stop)
    before = abandoned(engine)
    result = _run_tool(_h2load_argv(engine, body, 3 if signum is None else 60), engine, signum)
    if result is not None:
        assert "succeeded" in result.stdout, result.stdout + result.stderr
    assert_recovered(chaos, f"h2load (gRPC) stopped: {stop}",
                     abandoned=abandoned(engine) - before)


@pytest.mark.parametrize("stop", ["window ends", "SIGKILL"])
def test_wrk_stopped_in_the_middle_of_a_run(chaos, tmp_path, stop):
    engine = chaos.engine
    script = tmp_path / "predict.lua"
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f"wrk.body = '{rest_body(work=BUSY_WORK).decode()}'\n")
    signum = signal.SIGKILL if stop == "SIGKILL" else None
    before = abandoned(engine)
    argv = ["wrk", "-t2", "-c64", f"-d{3 if signum is None else 60}s", "-s", str(script),
            f"{engine.rest_url}/v1/models/linear:predict"]
    result = _run_tool(argv, engine, signum)
    if result is not None:
        assert "requests in" in result.stdout, result.stdout + result.stderr
    assert_recovered(chaos, f"wrk (REST) stopped: {stop}",
                     abandoned=abandoned(engine) - before)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_locust_stopped_in_the_middle_of_a_run(chaos, tmp_path, stop):
    """``servectl loadtest`` (Locust users on REST and gRPC) stopped mid-run."""
    engine = chaos.engine
    argv = command("loadtest", "--model", "linear",
                   "--rest", engine.rest_url, "--grpc", engine.grpc_target, "--users", "16",
                   "--duration", "60s", "--out", str(tmp_path / "locust"))
    before = abandoned(engine)
    _run_tool(argv, engine, stop)
    assert_recovered(chaos, f"Locust (REST + gRPC) stopped: {stop.name}",
                     abandoned=abandoned(engine) - before)
