"""Overload: at ~3x capacity the engine stays up, refuses the excess at once with TensorFlow
Serving's message, keeps accepted requests' latency bounded, and recovers when load drops."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.helpers import linear_predict, serving, write_report
from tests.model_builders import save_linear
from tf_serving_platform.servectl.engine_process import EngineProcess

BATCHING = """max_batch_size { value: 4 }
batch_timeout_micros { value: 0 }
max_enqueued_batches { value: 2 }
num_batch_threads { value: 1 }
"""
WORK = 150  # rounds of a 256x256 matmul per batch: tens of ms on 2 cores


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    folder = tmp_path_factory.mktemp("overload")
    save_linear(folder / "linear" / "1", a=1.0, b=0.0)
    (folder / "batching.config").write_text(BATCHING)
    with serving("--model_name=linear", f"--model_base_path={folder / 'linear'}",
                 "--enable_batching",
                 f"--batching_parameters_file={folder / 'batching.config'}") as server:
        yield server


def call(engine: EngineProcess) -> tuple[int, float, str]:
    """``(status, seconds, error message)`` of one predict."""
    started = time.perf_counter()
    status, body = linear_predict(engine, 1.0, work=WORK, timeout=30)
    return status, time.perf_counter() - started, body["error"] if status >= 400 else ""


def drive(engine: EngineProcess, clients: int, seconds: float) -> list[tuple[int, float, str]]:
    """``clients`` closed-loop callers for ``seconds``."""
    stop = time.monotonic() + seconds

    def loop(_):
        results = []
        while time.monotonic() < stop:
            results.append(call(engine))
        return results
    with ThreadPoolExecutor(clients) as pool:
        return [r for batch in pool.map(loop, range(clients)) for r in batch]


def test_three_times_capacity_is_refused_fast_and_recovers(engine):
    baseline = sorted(call(engine)[1] for _ in range(10))[5]
    # Capacity: one batch thread, batches of 4, plus 2 queued batches = 12 requests in the
    # engine at most. 36 concurrent callers hold 3x that.
    results = drive(engine, 36, 6)
    ok = np.array([t for s, t, _ in results if s == 200]) * 1000
    refused = [(t, m) for s, t, m in results if s == 503]
    assert {s for s, _, _ in results} <= {200, 503}, "only successes and fast refusals"
    assert len(ok) > 20 and len(refused) > len(ok)
    assert {m for _, m in refused} == {
        "The batch scheduling queue to which this task was submitted is full"}
    refused_p50 = float(np.percentile([t for t, _ in refused], 50)) * 1000
    accepted_p50, accepted_p99 = (float(p) for p in np.percentile(ok, [50, 99]))
    # Fast, relative to the machine it runs on: a refusal waits for no batch (last recorded run:
    # 14 ms; 61 ms once beside a CPU hog and a second test suite).
    assert refused_p50 < accepted_p50, \
        f"refusals took {refused_p50:.1f} ms, accepted requests {accepted_p50:.1f} ms"
    assert accepted_p99 < 40 * baseline * 1000, "accepted requests waited without bound"
    dropped = time.monotonic()
    while call(engine)[1] > 2 * baseline + 0.05:
        assert time.monotonic() - dropped < 5, "latency did not recover within 5 s"
    recovery = time.monotonic() - dropped
    summary = {"requests": len(results), "accepted": len(ok), "refused_503": len(refused),
               "refused_p50_ms": round(refused_p50, 2), "accepted_p99_ms": round(accepted_p99, 1),
               "baseline_ms": round(baseline * 1000, 1), "recovery_s": round(recovery, 2)}
    print("overload:", summary)
    write_report("overload_last_run.json", summary)
