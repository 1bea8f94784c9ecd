"""PredictionService in process, over a real manager and real SavedModels: it answers from the
version that serves, refuses while starting, keeps answering across a version swap under
concurrent calls, and abandons a call whose deadline has passed."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import wait_until
from tests.model_builders import save_linear
from tf_serving_platform.serving.engine.calls import ModelSpec, PredictCall
from tf_serving_platform.serving.engine.manager import Manager
from tf_serving_platform.serving.engine.metrics import Metrics
from tf_serving_platform.serving.engine.servable import load_saved_model
from tf_serving_platform.serving.engine.service import PredictionService
from tf_serving_platform.serving.engine.watchdog import ModelRuns
from tf_serving_platform.serving.errors import ServingError

CONFIG = tf.compat.v1.ConfigProto()


def load(name, version, path):
    return load_saved_model(name, version, path, {"serve"}, CONFIG)


@pytest.fixture
def versions(tmp_path):
    """``linear`` versions: y = version * x."""
    return {v: save_linear(tmp_path / "linear" / str(v), a=float(v), b=0.0) for v in (1, 2)}


@pytest.fixture
def service(versions):
    manager = Manager(load)
    manager.set_aspired_versions("linear", {1: versions[1]})
    assert manager.wait_until_available(["linear"], timeout=60) == {}
    metrics = Metrics()
    with ThreadPoolExecutor(max_workers=4) as executor:
        made = PredictionService(manager, executor, ModelRuns(metrics), lambda: ["linear"],
                                 metrics)
        made.starting = False
        yield made, manager
        manager.stop()


def call(x: float, work: int = 0, deadline: float | None = None) -> PredictCall:
    return PredictCall(ModelSpec("linear"), {"x": np.array([x], np.float32),
                                             "work": np.array([work], np.int32)},
                       deadline=deadline)


def abandoned(metrics: Metrics) -> float:
    return sum(s.value for f in metrics.registry.collect() for s in f.samples
               if s.name.startswith(":platform:requests_abandoned") and s.name.endswith("total"))


def test_predict_answers_from_the_serving_version(service):
    predictions, _ = service
    result = asyncio.run(predictions.predict(call(3.0)))
    assert (result.served.name, result.served.version) == ("linear", 1)
    assert result.outputs["y"].tolist() == [3.0]


def test_every_name_is_unavailable_while_starting(service):
    predictions, _ = service
    predictions.starting = True
    with pytest.raises(ServingError) as refused:
        asyncio.run(predictions.predict(call(1.0)))
    assert refused.value.code is grpc.StatusCode.UNAVAILABLE


def test_concurrent_calls_across_a_version_swap_all_answer_from_one_version(service, versions):
    predictions, manager = service

    async def calls_until_swapped() -> list:
        answers = []
        manager.set_aspired_versions("linear", {2: versions[2]})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batch = await asyncio.gather(*(predictions.predict(call(3.0)) for _ in range(8)))
            answers += batch
            if batch[-1].served.version == 2:
                break
        return answers
    answers = asyncio.run(calls_until_swapped())
    assert {(r.served.version, r.outputs["y"].tolist()[0]) for r in answers} <= {(1, 3.0),
                                                                                  (2, 6.0)}
    assert answers[-1].served.version == 2


def test_a_call_past_its_deadline_is_abandoned(service):
    predictions, _ = service
    with pytest.raises(ServingError) as late:
        asyncio.run(predictions.predict(call(1.0, work=2000, deadline=time.monotonic() + 0.05)))
    assert late.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: abandoned(predictions.metrics) == 1)
