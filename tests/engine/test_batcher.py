"""The batch scheduler on a real servable: merging, padding, routing, refusal, splitting,
cancellation, and what it tells the watchdog."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import wait_until
from tests.model_builders import save_linear
from tf_serving_platform.serving.engine.batcher import (
    QUEUE_FULL,
    BatchingOptions,
    BatchScheduler,
    Task,
    merge,
    pad_rows,
    pad_to_shape,
    split,
)
from tf_serving_platform.serving.engine.metrics import Metrics
from tf_serving_platform.serving.engine.servable import load_saved_model
from tf_serving_platform.serving.engine.watchdog import ModelRuns
from tf_serving_platform.serving.errors import ServingError

CONFIG = tf.compat.v1.ConfigProto()


@pytest.fixture(scope="module")
def servables(test_models, tmp_path_factory):
    linear = save_linear(tmp_path_factory.mktemp("slow") / "1", a=1.0, b=0.0)
    load = lambda name, path: load_saved_model(name, 1, path, {"serve"}, CONFIG)  # noqa: E731
    return {"half": load("half_plus_two", test_models["half_plus_two"] / "1"),
            "multi": load("multi_signature", test_models["multi_signature"] / "1"),
            "slow": load("linear", linear)}


@pytest.fixture
def scheduler():
    made = []

    def make(**kwargs) -> tuple[BatchScheduler, Metrics]:
        metrics = Metrics()
        made.append(BatchScheduler(BatchingOptions(**kwargs), metrics, ModelRuns(metrics)))
        return made[-1], metrics
    yield make
    for s in made:
        s.stop()


def sample_values(metrics: Metrics, name: str) -> dict:
    return {s.name: s.value for f in metrics.registry.collect() for s in f.samples
            if s.name.startswith(name)}


def x(*values) -> dict:
    return {"x": np.array(values, np.float32)}


def test_concurrent_requests_merge_and_each_caller_gets_its_rows(servables, scheduler):
    batcher, metrics = scheduler(max_batch_size=8, batch_timeout_micros=200_000,
                                 num_batch_threads=1)
    futures = [batcher.submit(servables["half"], "serving_default", x(float(i)), ("y",))
               for i in range(8)]
    assert [f.result(10)["y"].tolist() for f in futures] == [[0.5 * i + 2] for i in range(8)]
    sizes = sample_values(metrics, ":tensorflow:serving:batching_session:processed_batch_size")
    assert sizes[":tensorflow:serving:batching_session:processed_batch_size_count"] == 1
    assert sizes[":tensorflow:serving:batching_session:processed_batch_size_sum"] == 8


def test_padding_to_allowed_batch_sizes_is_sliced_off(servables, scheduler):
    batcher, metrics = scheduler(max_batch_size=8, allowed_batch_sizes=(4, 8),
                                 batch_timeout_micros=100_000, num_batch_threads=1)
    result = batcher.submit(servables["half"], "serving_default", x(1, 2, 3), ("y",)).result(10)
    assert result["y"].tolist() == [2.5, 3.0, 3.5]
    padding = sample_values(metrics, ":tensorflow:serving:batching_session:padding_size")
    assert padding[":tensorflow:serving:batching_session:padding_size_sum"] == 1


def test_order_and_routing_under_concurrency(servables, scheduler):
    batcher, _ = scheduler(max_batch_size=16, batch_timeout_micros=2000, num_batch_threads=2)

    def call(i: int):
        values = x(*(float(i * 10 + k) for k in range(i % 3 + 1)))
        got = batcher.submit(servables["half"], "serving_default", values, ("y",)).result(10)
        return got["y"].tolist() == (0.5 * values["x"] + 2).tolist()
    with ThreadPoolExecutor(32) as pool:
        assert all(pool.map(call, range(200)))


def test_mixed_signatures_never_share_a_batch(servables, scheduler):
    batcher, metrics = scheduler(max_batch_size=8, batch_timeout_micros=200_000,
                                 num_batch_threads=1)
    multi = servables["multi"]
    doubled = [batcher.submit(multi, "serving_default", x(float(i)), ("y",)) for i in range(3)]
    plus = [batcher.submit(multi, "plus_one", x(float(i)), ("y",)) for i in range(3)]
    assert [f.result(10)["y"][0] for f in doubled] == [0.0, 2.0, 4.0]
    assert [f.result(10)["y"][0] for f in plus] == [1.0, 2.0, 3.0]
    count = sample_values(metrics, ":tensorflow:serving:batching_session:processed_batch_size")
    assert count[":tensorflow:serving:batching_session:processed_batch_size_count"] == 2


def test_full_queue_is_refused_at_once(servables, scheduler):
    batcher, _ = scheduler(max_batch_size=1, max_enqueued_batches=1, num_batch_threads=1)
    slow = servables["slow"]
    busy = {"x": np.array([1.0], np.float32), "work": np.array([4000], np.int32)}
    running = batcher.submit(slow, "serving_default", busy, ("y",))
    wait_until(running.running)  # the only batch thread is now busy with it
    queued = batcher.submit(slow, "serving_default", busy, ("y",))
    started = time.monotonic()
    with pytest.raises(ServingError) as refused:
        batcher.submit(slow, "serving_default", busy, ("y",))
    assert time.monotonic() - started < 0.05
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    assert refused.value.message == QUEUE_FULL
    assert running.result(60)["y"].tolist() == [1.0] and queued.result(60)["y"].tolist() == [1.0]


def test_task_larger_than_max_batch_size_is_refused_or_split(servables, scheduler):
    refusing, _ = scheduler(max_batch_size=4)
    with pytest.raises(ServingError, match="Task size 5 is larger than maximum input batch size 4"):
        refusing.submit(servables["half"], "serving_default", x(1, 2, 3, 4, 5), ("y",))
    splitting, metrics = scheduler(max_batch_size=4, enable_large_batch_splitting=True,
                                   max_execution_batch_size=2, batch_timeout_micros=100_000)
    result = splitting.submit(servables["half"], "serving_default", x(1, 2, 3, 4, 5), ("y",))
    assert result.result(10)["y"].tolist() == [2.5, 3.0, 3.5, 4.0, 4.5]


def test_expired_deadline_is_not_computed(servables, scheduler):
    batcher, metrics = scheduler(max_batch_size=4, batch_timeout_micros=300_000)
    future = batcher.submit(servables["half"], "serving_default", x(1.0), ("y",),
                            deadline=time.monotonic() + 0.05)
    with pytest.raises(ServingError) as late:
        future.result(10)
    assert late.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    processed = sample_values(metrics, ":tensorflow:serving:batching_session:processed")
    assert processed[":tensorflow:serving:batching_session:processed_batch_size_count"] == 0


def test_pure_helpers():
    assert pad_rows(np.array([[1], [2]]), 4).tolist() == [[1], [2], [1], [1]]
    assert pad_to_shape(np.array([[1, 2]]), (4,)).tolist() == [[1, 2, 1, 1]]
    tasks = [Task({"a": np.array([[1, 2]])}, 1, None), Task({"a": np.array([[3]])}, 1, None)]
    # Shorter rows are padded with their own first element (TF's PadTensor), padding rows
    # repeat the first row.
    assert merge(tasks, 3, pad_variable=True)["a"].tolist() == [[1, 2], [3, 3], [1, 2]]
    assert [r["y"].tolist() for r in split({"y": np.arange(4)}, tasks)] == [[0], [1]]


def slow_inputs(work: int) -> dict:
    return {"x": np.array([1.0], np.float32), "work": np.array([work], np.int32)}


def processed_batches(metrics: Metrics) -> float:
    name = ":tensorflow:serving:batching_session:processed_batch_size"
    return sample_values(metrics, name)[f"{name}_count"]


def test_a_cancelled_queued_task_leaves_its_queue_and_is_never_computed(servables, scheduler):
    batcher, metrics = scheduler(max_batch_size=4, max_enqueued_batches=1,
                                 batch_timeout_micros=60_000_000, num_batch_threads=1)
    first = batcher.submit(servables["half"], "serving_default", x(1.0), ("y",))
    assert batcher.queue_depth() == 1 and first.cancel()
    assert batcher.queue_depth() == 0
    # Its room is free again: four rows fit in the one batch the queue may hold.
    rest = [batcher.submit(servables["half"], "serving_default", x(float(i)), ("y",))
            for i in range(4)]
    assert [f.result(10)["y"].tolist() for f in rest] == [[0.5 * i + 2] for i in range(4)]
    assert processed_batches(metrics) == 1
    assert sample_values(metrics, ":tensorflow:serving:batching_session:input_batch_size")[
        ":tensorflow:serving:batching_session:input_batch_size_sum"] == 4


def test_callers_gone_while_their_batch_runs_leave_the_thread_serving(servables, scheduler):
    """The wedge of issue 12: futures cancelled while queued and while running used to make the
    batch thread raise InvalidStateError and die."""
    batcher, _ = scheduler(max_batch_size=64, batch_timeout_micros=1000, num_batch_threads=1)
    slow = servables["slow"]
    running = batcher.submit(slow, "serving_default", slow_inputs(2000), ("y",))
    wait_until(running.running)
    queued = [batcher.submit(slow, "serving_default", slow_inputs(10), ("y",)) for _ in range(64)]
    assert not running.cancel()  # a running batch can no longer be cancelled
    assert all(f.cancel() for f in queued)
    assert running.result(60)["y"].tolist() == [1.0]
    after = batcher.submit(servables["half"], "serving_default", x(2.0), ("y",))
    assert after.result(10)["y"].tolist() == [3.0]
    assert all(t.is_alive() for t in batcher.threads)


def test_cancelling_a_split_task_cancels_its_queued_pieces(servables, scheduler):
    batcher, metrics = scheduler(max_batch_size=4, enable_large_batch_splitting=True,
                                 max_execution_batch_size=2, batch_timeout_micros=60_000_000,
                                 num_batch_threads=1)
    combined = batcher.submit(servables["half"], "serving_default", x(1, 2, 3, 4, 5), ("y",))
    assert batcher.queue_depth() == 3 and combined.cancel()
    assert batcher.queue_depth() == 0 and processed_batches(metrics) == 0


def test_stall_is_reported_while_queued_work_sees_no_batch_run(servables, scheduler):
    batcher, _ = scheduler(max_batch_size=1, batch_timeout_micros=0, num_batch_threads=1)
    slow = servables["slow"]
    assert batcher.stall(time.monotonic(), 0.2) is None
    running = batcher.submit(slow, "serving_default", slow_inputs(6000), ("y",))
    wait_until(running.running)
    waiting = batcher.submit(slow, "serving_default", slow_inputs(0), ("y",))
    stall = wait_until(lambda: batcher.stall(time.monotonic(), 0.2), timeout=30)
    assert stall.component == "batch_queue" and "no batch ran" in stall.reason
    assert waiting.cancel() and batcher.stall(time.monotonic(), 0.2) is None
    running.result(120)
