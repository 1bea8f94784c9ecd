"""Request ids and ``--log_format=json`` on a real engine with two front-end processes.

A request id sent as ``x-request-id`` (a REST header, gRPC metadata) comes back on the answer,
success or error; without one the engine makes one. It crosses into the model process with the
call, so the model process's log lines for that request name it.
"""

from __future__ import annotations

import json
import urllib.request

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import (
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.helpers import models_config, serving, wait_until
from tf_serving_platform.servectl.engine_process import EngineProcess
from tf_serving_platform.serving import codec

HPT = "half_plus_two"


@pytest.fixture(scope="module")
def json_engine(test_models, tmp_path_factory):
    config = tmp_path_factory.mktemp("request-ids") / "models.config"
    config.write_text(models_config({HPT: test_models[HPT]}))
    with serving(f"--model_config_file={config}", "--log_format=json",
                 "--frontend_processes=2") as server:
        yield server


def json_lines(engine: EngineProcess) -> list[dict]:
    """The engine's log lines that are JSON objects (TensorFlow's C++ logs are not ours)."""
    lines = []
    for line in engine.log().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def rest(engine: EngineProcess, path: str, body: dict | None, request_id: str | None = None):
    headers = {"x-request-id": request_id} if request_id else {}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(engine.rest_url + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("x-request-id")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("x-request-id")


def test_rest_echoes_the_callers_id_or_makes_one(json_engine):
    path = f"/v1/models/{HPT}:predict"
    assert rest(json_engine, path, {"instances": [1.0]}, "abc-123") == (200, "abc-123")
    assert rest(json_engine, "/v1/models/nope:predict", {"instances": [1.0]}, "e-1") == \
        (404, "e-1")
    status, made = rest(json_engine, path, {"instances": [1.0]})
    assert status == 200 and len(made) == 32 and int(made, 16) >= 0
    _, forged = rest(json_engine, path, {"instances": [1.0]}, "x" * 200)
    assert forged != "x" * 200 and len(forged) == 32  # too long to carry into logs


def test_grpc_echoes_the_id_in_trailing_metadata(json_engine):
    with json_engine.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = HPT
        request.inputs["x"].CopyFrom(_floats([1.0]))
        _, call = stub.Predict.with_call(request, metadata=[("x-request-id", "g-7")], timeout=30)
        assert dict(call.trailing_metadata())["x-request-id"] == "g-7"
        request.model_spec.name = "nope"
        with pytest.raises(grpc.RpcError) as failed:
            stub.Predict(request, metadata=[("x-request-id", "g-8")], timeout=30)
        assert failed.value.code() == grpc.StatusCode.NOT_FOUND
        assert dict(failed.value.trailing_metadata())["x-request-id"] == "g-8"


def test_json_logs_carry_model_version_and_the_callers_request_id(json_engine, test_models):
    lines = json_lines(json_engine)
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    loaded = [line for line in lines if line["message"].startswith(f"loaded {HPT} version 1")]
    assert loaded and loaded[0]["model"] == HPT and loaded[0]["version"] == 1
    config = model_management_pb2.ReloadConfigRequest()
    config.config.model_config_list.config.add(name=HPT, base_path=str(test_models[HPT]),
                                                model_platform="tensorflow")
    with json_engine.channel() as channel:
        model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
            config, metadata=[("x-request-id", "reload-42")], timeout=60)
    # The reload ran in the model process: the id crossed from the front end that took it.
    reload_lines = wait_until(lambda: [line for line in json_lines(json_engine)
                                       if line.get("request_id") == "reload-42"])
    assert any(line["message"].startswith("config reload: 1 model(s)") for line in reload_lines)


def _floats(values):
    return codec.ndarray_to_tensor_proto(np.float32(values))
