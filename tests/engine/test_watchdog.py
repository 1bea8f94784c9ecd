"""The watchdog on a real engine: a model run stuck past ``--stall_timeout_seconds`` fails
liveness, readiness and gRPC health with the reason, and the engine is healthy again once the run
returns; SIGTERM does not wait for a run that never returns. Plus the watchdog's own rules."""

from __future__ import annotations

import threading
import time

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.helpers import (
    NEVER_RETURNS,
    http_json,
    linear_in_background,
    metric,
    monitoring_flag,
    serving,
    wait_until,
)
from tests.model_builders import save_linear
from tf_serving_platform.servectl.engine_process import EngineProcess
from tf_serving_platform.serving.engine.metrics import Metrics
from tf_serving_platform.serving.engine.watchdog import ModelRuns, Stall, Watchdog

STUCK_WORK = 12_000      # rounds of a 256x256 matmul: several seconds, far past the bound


def health(engine: EngineProcess, path: str) -> tuple[int, dict]:
    return http_json(engine.rest_url + path, timeout=5)


def grpc_serving(engine: EngineProcess) -> bool:
    stub = health_pb2_grpc.HealthStub(engine.channel())
    status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
    return status == health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
def watched(tmp_path):
    save_linear(tmp_path / "linear" / "1", a=1.0, b=0.0)
    with serving("--model_name=linear", f"--model_base_path={tmp_path / 'linear'}",
                 monitoring_flag(tmp_path), "--stall_timeout_seconds=1",
                 "--grace_period_seconds=1", exit_code=None) as engine:
        yield engine


def test_a_stuck_model_run_fails_health_with_its_reason_then_recovers(watched):
    assert health(watched, "/healthz") == (200, {"status": "alive"})
    caller = linear_in_background(watched, STUCK_WORK)
    status, body = wait_until(lambda: (answer := health(watched, "/healthz"))[0] == 503
                              and answer, timeout=60)
    assert body["status"] == "stalled"
    assert body["reason"].startswith("a model run (linear version 1 Predict) has been running")
    ready_status, ready = health(watched, "/readyz")
    assert ready_status == 503
    assert ready["reason"].startswith("a model run (linear version 1 Predict)")
    wait_until(lambda: not grpc_serving(watched), timeout=10)
    assert metric(watched.rest_url, ':platform:stalled{component="model_run"}') == 1
    assert "the engine is stalled, health now fails: a model run" in watched.log()
    caller.join(300)
    wait_until(lambda: health(watched, "/healthz")[0] == 200 and grpc_serving(watched),
               timeout=30)
    assert health(watched, "/readyz")[0] == 200
    assert metric(watched.rest_url, ':platform:stalled{component="model_run"}') == 0
    assert metric(watched.rest_url, ':platform:stalls{component="model_run"}') == 1
    assert "the engine makes progress again" in watched.log()


def test_sigterm_does_not_wait_for_a_run_that_never_returns(watched):
    """Shutdown cancels the caller, so nothing pins the version any more: its unload closes
    the TensorFlow session, which cancels the run; a run that has not noticed yet (or ignores
    it) is left behind: the process exits without waiting for its thread. Either way: exit 0,
    at once."""
    linear_in_background(watched, NEVER_RETURNS)
    wait_until(lambda: health(watched, "/healthz")[0] == 503, timeout=60)
    started = time.monotonic()
    assert watched.stop(timeout=60) == 0, watched.log()
    assert time.monotonic() - started < 30
    assert "unloaded linear version 1" in watched.log()


class _Servable:
    name, version, kind = "m", 1, "TF1"


def test_watchdog_rules_on_real_threads_and_runs():
    metrics = Metrics()
    runs = ModelRuns(metrics)
    release = threading.Event()
    worker = threading.Thread(target=runs.call, args=(_Servable(), "Predict", release.wait))
    worker.start()
    watchdog = Watchdog(0.2, metrics, [runs.stall])
    assert watchdog.check() is None
    stall = wait_until(watchdog.check, timeout=10)
    assert stall.component == "model_run" and "m version 1 Predict" in stall.reason
    release.set()
    worker.join()
    assert watchdog.check() is None and runs.in_flight() == 0
    ended = threading.Thread(target=lambda: None)
    ended.start()
    ended.join()
    watchdog.watch_threads(ended, None)
    assert watchdog.check() == Stall("thread", f"worker thread {ended.name} is not running")
    watchdog.stopping = True  # at shutdown, threads that end are not a stall
    assert watchdog.check() is None
    assert Watchdog(0, metrics, [lambda now, bound: Stall("x", "y")]).check() is None
