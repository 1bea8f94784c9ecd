"""Request logging (``ModelConfig.logging_config``, tfrecord collector) on a real engine with two
front-end processes: what each API writes, over REST and gRPC, and how reloads change it.

The records are read back as TensorFlow Serving's ``PredictionLog`` protos and compared with
what was sent and answered.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.helpers import (
    metric,
    models_config,
    monitoring_flag,
    send,
    send_json,
    serving,
    wait_until,
)
from tf_serving_platform.serving import codec
from tf_serving_platform.serving.engine.request_log import read_logs

HPT = "half_plus_two"
T = 30


def logging_config(prefix, rate: float = 1.0, kind: str = "tfrecord") -> str:
    return (f' logging_config {{ log_collector_config {{ type: "{kind}" filename_prefix: '
            f'"{prefix}" }} sampling_config {{ sampling_rate: {rate} }} }}')


def config_text(test_models, prefix, rate: float = 1.0, kind: str = "tfrecord") -> str:
    return models_config({HPT: test_models[HPT], "strings": test_models["strings"]},
                         policies={HPT: logging_config(prefix, rate, kind)})


@pytest.fixture(scope="module")
def logged(test_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("request-logging")
    config = folder / "models.config"
    config.write_text(config_text(test_models, folder / "logs" / HPT))
    with serving(f"--model_config_file={config}", "--frontend_processes=2",
                 monitoring_flag(folder)) as server:
        server.prefix = folder / "logs" / HPT
        yield server


def records(engine, count: int) -> list:
    """The first ``count`` records, once they are written (the logger flushes within 1 s)."""
    return wait_until(lambda: (found := list(read_logs(engine.prefix))) and
                      len(found) >= count and found)[:count]


def rest_predict(engine, body: dict, request_id: str, model: str = HPT) -> dict:
    status, answer = send_json(engine, f"POST /v1/models/{model}:predict", body,
                               {"x-request-id": request_id}, timeout=T)
    assert status == 200, answer
    return answer


def reload(engine, text: str):
    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(text, request.config)
    with engine.channel() as channel:
        return model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
            request, timeout=60)


def example_input(*values: float):
    request = classification_pb2.ClassificationRequest()
    for value in values:
        request.input.example_list.examples.add().features.feature["x"].float_list.value.append(
            value)
    return request.input


@pytest.fixture(scope="module")
def traffic(logged):
    """One call of each API over both wires (and two that are not logged); their records."""
    rest_predict(logged, {"instances": [1.0, 3.0]}, "rest-1")
    rest_predict(logged, {"instances": ["a"]}, "other-model", model="strings")  # no logging
    with logged.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        predict = predict_pb2.PredictRequest()
        predict.model_spec.name = HPT
        predict.model_spec.version.value = 1
        predict.inputs["x"].CopyFrom(codec.ndarray_to_tensor_proto(np.float32([5.0])))
        stub.Predict(predict, metadata=[("x-request-id", "grpc-2")], timeout=T)
        stub.Classify(classification_pb2.ClassificationRequest(
            model_spec={"name": HPT, "signature_name": "classify_x_to_y"},
            input=example_input(2.0)), timeout=T)
        stub.Regress(regression_pb2.RegressionRequest(
            model_spec={"name": HPT, "signature_name": "regress_x_to_y"},
            input=example_input(4.0)), timeout=T)
        stub.MultiInference(inference_pb2.MultiInferenceRequest(
            input=example_input(6.0), tasks=[
                {"model_spec": {"name": HPT, "signature_name": "classify_x_to_y"},
                 "method_name": "tensorflow/serving/classify"},
                {"model_spec": {"name": HPT, "signature_name": "regress_x_to_y"},
                 "method_name": "tensorflow/serving/regress"}]), timeout=T)
        with pytest.raises(grpc.RpcError):  # a failed call is not logged, as in TF Serving
            stub.Predict(predict_pb2.PredictRequest(model_spec={"name": HPT}), timeout=T)
    return records(logged, 5)


def test_every_api_over_both_wires_is_logged_as_served(logged, traffic):
    rest_log, grpc_log, classify, regress, multi = traffic

    assert rest_log.WhichOneof("log_type") == "predict_log"
    meta = rest_log.log_metadata
    assert (meta.model_spec.name, meta.model_spec.version.value,
            meta.model_spec.signature_name) == (HPT, 1, "serving_default")
    assert meta.request_origin == "rest-1" and list(meta.saved_model_tags) == ["serve"]
    assert meta.sampling_config.sampling_rate == 1.0 and meta.timestamp_secs > 0
    sent = codec.tensor_proto_to_ndarray(rest_log.predict_log.request.inputs["x"])
    got = codec.tensor_proto_to_ndarray(rest_log.predict_log.response.outputs["y"])
    assert sent.tolist() == [1.0, 3.0] and got.tolist() == [2.5, 3.5]
    assert not rest_log.predict_log.request.model_spec.HasField("version")  # as it was asked

    assert grpc_log.log_metadata.request_origin == "grpc-2"
    assert grpc_log.predict_log.request.model_spec.version.value == 1
    assert codec.tensor_proto_to_ndarray(
        grpc_log.predict_log.response.outputs["y"]).tolist() == [4.5]
    assert classify.classify_log.response.result.classifications[0].classes[0].score == 3.0
    assert classify.classify_log.request.input == example_input(2.0)
    assert regress.regress_log.response.result.regressions[0].value == 4.0
    assert [r.WhichOneof("result") for r in multi.multi_inference_log.response.results] == \
        ["classification_result", "regression_result"]
    assert metric(logged.rest_url, f':platform:request_log_records{{model_name="{HPT}",'
                                   'outcome="written"}') >= 5


def test_a_reload_applies_the_sampling_rate_and_refuses_an_unknown_collector(
        logged, traffic, test_models):
    with pytest.raises(grpc.RpcError) as refused:
        reload(logged, config_text(test_models, logged.prefix, kind="bigquery"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Cannot find LogCollector::Factory for type: 'bigquery'" in refused.value.details()
    before = len(list(read_logs(logged.prefix)))
    rest_predict(logged, {"instances": [7.0]}, "still-logged")  # the refusal changed nothing
    assert records(logged, before + 1)[-1].log_metadata.request_origin == "still-logged"

    reload(logged, config_text(test_models, logged.prefix, rate=0.0))
    for i in range(20):
        rest_predict(logged, {"instances": [float(i)]}, f"unsampled-{i}")
    reload(logged, config_text(test_models, logged.prefix, rate=1.0))
    rest_predict(logged, {"instances": [9.0]}, "sampled-again")
    origins = [r.log_metadata.request_origin for r in records(logged, before + 2)]
    assert origins[-1] == "sampled-again" and not any(o.startswith("unsampled") for o in origins)


@pytest.fixture(scope="module")
def second_engine(test_models):
    """An engine without request logging, to replay the first one's traffic against."""
    with serving(f"--model_base_path={test_models[HPT]}",
                 f"--model_name={HPT}") as server:
        yield server


def test_logged_traffic_replayed_against_a_second_engine_answers_the_same(
        logged, traffic, second_engine):
    from tf_serving_platform.loadtest import replay

    logs = traffic
    replayed = replay.load(logged.prefix)
    assert [r.api for r in replayed[:5]] == ["Predict", "Predict", "Classify", "Regress",
                                            "MultiInference"]
    responses = {"Predict": predict_pb2.PredictResponse,
                 "Classify": classification_pb2.ClassificationResponse,
                 "Regress": regression_pb2.RegressionResponse,
                 "MultiInference": inference_pb2.MultiInferenceResponse}
    with second_engine.channel() as channel:
        for log, request in zip(logs, replayed, strict=False):
            call = channel.unary_unary(request.grpc_method,
                                       response_deserializer=responses[request.api].FromString)
            answer = call(request.grpc_body, timeout=T)
            logged_answer = getattr(log, log.WhichOneof("log_type")).response
            assert answer == logged_answer, request.api
    for request in replayed[:4]:  # REST has all but MultiInference
        assert request.rest_path is not None
        assert send(second_engine, f"POST {request.rest_path}", request.rest_body,
                    timeout=T)[0] == 200


def test_servectl_loadtest_replays_the_log_over_both_wires(logged, traffic, second_engine,
                                                          tmp_path):
    from tests.helpers import run_servectl

    result = run_servectl("loadtest", "--replay", str(logged.prefix), "--rest",
                          second_engine.rest_url, "--grpc", second_engine.grpc_target,
                          "--users", "2", "--duration", "2s", "--out", str(tmp_path),
                          "--slo-error-rate", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "replaying " in result.stdout and "(Classify, MultiInference, Predict, Regress)" \
        in result.stdout
    stats = (tmp_path / "locust_stats.csv").read_text()
    assert ":classify" in stats and "MultiInference half_plus_two" in stats


def test_servectl_export_takes_its_warmup_from_the_log(logged, traffic, test_models, tmp_path):
    from tests.helpers import run_servectl
    from tf_serving_platform.export.warmup import read_warmup

    result = run_servectl("export", str(test_models[HPT] / "1"), "--base-path", str(tmp_path),
                          "--name", "replayed", "--warmup-from", str(logged.prefix), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    warmup = read_warmup(tmp_path / "replayed" / "1")
    kinds = [w.WhichOneof("log_type") for w in warmup]
    assert {"predict_log", "classify_log", "regress_log", "multi_inference_log"} <= set(kinds)
    assert all(w.predict_log.request.model_spec.name == "replayed" for w in warmup
               if w.HasField("predict_log"))
    assert not any(w.predict_log.request.model_spec.HasField("version") for w in warmup)
    assert not any(w.predict_log.HasField("response") for w in warmup)
    with serving(f"--model_base_path={tmp_path / 'replayed'}",
                 "--model_name=replayed") as served:  # every record replays at load
        assert f"replayed version 1: replayed {len(warmup)} warmup records" in served.log()
    missing = run_servectl("export", str(test_models[HPT] / "1"), "--base-path", str(tmp_path),
                           "--name", "other", "--warmup-from", str(tmp_path / "none"))
    assert missing.returncode == 2 and "no request log files there" in missing.stderr


def test_servectl_inspect_summarizes_the_log(logged, traffic):
    from tests.helpers import run_servectl

    result = run_servectl("inspect", str(logged.prefix))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"request log {logged.prefix}: ")
    total = len(list(read_logs(logged.prefix)))
    assert f", {total} records, " in lines[0]
    assert lines[1].startswith("  calls:      predict_log ") and "multi_inference_log 1" in lines[1]
    assert lines[2] == f"  models:     {HPT} {total}"
