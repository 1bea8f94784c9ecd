"""TensorFlow Serving's own integration tests, re-expressed against the engine.

Every test of ``tensorflow_serving/model_servers/tensorflow_model_server_test.py`` and every
request case of ``http_rest_api_handler_test.cc`` runs here on the generated equivalents of TF
Serving's test models (``tests/tfs_models.py``), through the real gRPC and REST APIs of a
``servectl serve`` child process, with TF Serving's expected answers. A few cases of
``tflite_session_test.cc`` and ``predict_impl_test.cc`` on the same models are added at the end
of their classes (marked in their docstrings).

Each class shares one engine (a class-scoped fixture); tests that change or stop their engine
start their own. TF Serving's tests name the model ``default`` in single-model mode; the classes
that group several of those models in one engine keep ``default`` for the first and name the
others after their directories.

Left out:

* ``test_tf_text``: needs the TF Text ops and ``tf_text_regression/01/saved_model.pb``, which
  TF Serving ships without a generator.
* ``_TestBadModel`` / ``_TestBadModelUpconvertedSavedModel`` are helpers no test calls (the
  first passes a tuple as the path); their FAILED_PRECONDITION dates from SessionBundle
  up-conversion, which TF Serving has removed. ``test_bad_model_keeps_server_from_starting``
  checks what TF Serving does with that model now: the initial load fails, the server exits.
* Two documented differences (README, compatibility) are tested as the engine answers them:
  TensorFlow's profiler service is not served (UNIMPLEMENTED), and the ParseExampleV2 TFLite
  custom op is not available in TFLite's Python runtime (that version fails to load).
* No test of these files needs a GPU or TF-TRT (the ``*_gpu*`` models serve only TF Serving's
  Docker image tests).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from google.protobuf import text_format
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    predict_pb2,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from tests.helpers import (
    DEADLINE,
    grpc_stubs,
    model_input,
    models_config,
    multi,
    request,
    send,
    send_json,
    serving,
    tensor,
    version_states,
    wait_until,
)
from tests.tfs_models import meta_graph
from tf_serving_platform.servectl.engine_process import EngineProcess

CLASSIFY, REGRESS = "tensorflow/serving/classify", "tensorflow/serving/regress"
DEFAULT_SIGNATURE = "serving_default"
VERSION = 123


def spec(model_spec) -> tuple:
    return model_spec.name, model_spec.signature_name, model_spec.version.value


@contextmanager
def engine_stubs(*flags: str):
    """An engine started with ``flags`` and gRPC stubs on it (``.server``: the process).

    ``--max_num_load_retries=0``: a model that cannot load ends the start at once (TF Serving
    exits when an initial load fails) instead of after five retries a minute apart.
    """
    with serving(*flags, "--max_num_load_retries=0") as server, server.channel() as channel:
        api = grpc_stubs(channel)
        api.server = server
        yield api


def exit_status(*flags: str, timeout: float = 60) -> tuple[int | None, str]:
    """Start an engine that should refuse to start: ``(exit status, its output)``; the status
    is None if it was still running after ``timeout`` seconds (then it is killed)."""
    server = EngineProcess(*flags).start(wait=None)
    try:
        status = server.process.wait(timeout)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
        status = None
    return status, server.log()


def single_model(path: Path, name: str = "default") -> list[str]:
    return [f"--model_name={name}", f"--model_base_path={path}"]


def config_file(directory: Path, paths: dict, **kw) -> str:
    """``--model_config_file=`` for a ModelServerConfig serving ``{name: base path}``."""
    config = directory / "models.config"
    config.write_text(models_config(paths, **kw))
    return f"--model_config_file={config}"


def verify_predict(predictions, expected: float, *, model: str = "default",
                   specify_output: bool = True, batch_input: bool = False,
                   signature: str = DEFAULT_SIGNATURE, version: int = VERSION) -> None:
    """TF Serving's ``VerifyPredictRequest``: float ``x`` = [2.0] of shape [1] (or [1, 1]) in,
    one float ``y`` out, the model spec echoed with the served version."""
    x = tensor([[2.0]] if batch_input else [2.0], typed=True)
    req = request(predict_pb2.PredictRequest, model, signature, inputs={"x": x},
                  output_filter=["y"] if specify_output else [])
    response = predictions.Predict(req, timeout=DEADLINE)
    assert "y" in response.outputs
    y = response.outputs["y"]
    assert (y.dtype, list(y.float_val)) == (types_pb2.DT_FLOAT, [expected])
    assert spec(response.model_spec) == (model, signature, version)


def example_request(cls, signature: str, model: str = "default"):
    """A Classify or Regress request of one example with float feature ``x`` = 2.0."""
    return request(cls, model, signature, input=model_input(2.0))


def check_classify(api, model: str = "default") -> None:
    req = example_request(classification_pb2.ClassificationRequest, "classify_x_to_y", model)
    response = api.predictions.Classify(req, timeout=DEADLINE)
    assert len(response.result.classifications) == 1
    assert [c.score for c in response.result.classifications[0].classes] == [3.0]
    assert spec(response.model_spec) == (model, "classify_x_to_y", VERSION)


def check_regress(api, model: str = "default") -> None:
    req = example_request(regression_pb2.RegressionRequest, "regress_x_to_y", model)
    response = api.predictions.Regress(req, timeout=DEADLINE)
    assert [r.value for r in response.result.regressions] == [3.0]
    assert spec(response.model_spec) == (model, "regress_x_to_y", VERSION)


def check_multi_inference(api, model: str = "default") -> None:
    req = multi((model, "regress_x_to_y", REGRESS), (model, "classify_x_to_y", CLASSIFY),
                inp=model_input(2.0))
    response = api.predictions.MultiInference(req, timeout=DEADLINE)
    assert len(response.results) == 2
    assert response.results[0].regression_result.regressions[0].value == 3.0
    assert response.results[1].classification_result.classifications[0].classes[0].score == 3.0
    assert [spec(r.model_spec) for r in response.results] == [
        (model, "regress_x_to_y", VERSION), (model, "classify_x_to_y", VERSION)]


def sorted_object(value):
    """TF Serving's ``SortedObject``: JSON with every object and array sorted, for comparing
    metadata whose maps have no order."""
    if isinstance(value, dict):
        return sorted((k, sorted_object(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sorted(sorted_object(v) for v in value)
    return value


def metadata(api, model: str = "default") -> dict:
    """GetModelMetadata of ``model``'s signature_def: the SignatureDefMap it packs."""
    req = request(get_model_metadata_pb2.GetModelMetadataRequest, model,
                  metadata_field=["signature_def"])
    response = api.predictions.GetModelMetadata(req, timeout=DEADLINE)
    assert spec(response.model_spec) == (model, "", VERSION)
    assert list(response.metadata) == ["signature_def"]
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    return dict(signatures.signature_def)


# ---- the TF1 half_plus_two (saved_model_half_plus_two_cpu) in single-model mode ----

@pytest.fixture(scope="class")
def tf1(tfs_models, tmp_path_factory):
    """``default`` = saved_model_half_plus_two_cpu, with the monitoring config and a gRPC Unix
    socket (TF Serving's test servers always listen on one)."""
    socket = tmp_path_factory.mktemp("uds") / "tf-serving.sock"
    with engine_stubs(*single_model(tfs_models["saved_model_half_plus_two_cpu"]),
                      f"--monitoring_config_file={tfs_models['monitoring_config']}",
                      f"--grpc_socket_path={socket}") as api:
        api.socket = socket
        yield api


class TestSavedModelHalfPlusTwo:
    """``tensorflow_model_server_test.py`` on ``saved_model_half_plus_two_cpu``."""

    def test_get_model_status(self, tf1):
        req = request(get_model_status_pb2.GetModelStatusRequest, "default")
        response = tf1.models.GetModelStatus(req, timeout=DEADLINE)
        assert version_states(response) == [(VERSION, "AVAILABLE", 0, "")]

    def test_get_model_metadata(self, tf1, tfs_models):
        assert metadata(tf1) == dict(meta_graph(
            tfs_models["saved_model_half_plus_two_cpu"] / "00000123").signature_def)

    def test_classify(self, tf1):
        check_classify(tf1)

    def test_regress(self, tf1):
        check_regress(tf1)

    def test_multi_inference(self, tf1):
        check_multi_inference(tf1)

    def test_predict_saved_model(self, tf1):
        """``x`` declared [-1, 1] is fed a [1] tensor: TF Serving feeds by tensor name and does
        not check the declared shape."""
        verify_predict(tf1.predictions, 3.0)
        verify_predict(tf1.predictions, 3.0, specify_output=False)

    def test_classify_rest(self, tf1):
        assert send_json(tf1.server, "POST /v1/models/default:classify", {
            "signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}) == \
            (200, {"results": [[["", 3.0]]]})

    def test_regress_rest(self, tf1):
        assert send_json(tf1.server, "POST /v1/models/default:regress", {
            "signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}) == \
            (200, {"results": [3.0]})

    def test_predict_rest(self, tf1):
        assert send_json(tf1.server, "POST /v1/models/default:predict",
                     {"instances": [2.0, 3.0, 4.0]}) == (200, {"predictions": [3.0, 3.5, 4.0]})

    def test_predict_columnar_rest(self, tf1):
        assert send_json(tf1.server, "POST /v1/models/default:predict",
                     {"inputs": [2.0, 3.0, 4.0]}) == (200, {"outputs": [3.0, 3.5, 4.0]})

    def test_get_status_rest(self, tf1):
        assert send_json(tf1.server, "GET /v1/models/default") == (200, {"model_version_status": [
            {"version": "123", "state": "AVAILABLE",
             "status": {"error_code": "OK", "error_message": ""}}]})

    def test_get_model_metadata_rest(self, tf1, tfs_models):
        status, got = send_json(tf1.server, "GET /v1/models/default/metadata")
        expected = json.loads(tfs_models["half_plus_two_model_metadata"].read_text())
        assert status == 200
        assert sorted_object(got) == sorted_object(expected)

    def test_prometheus_endpoint(self, tf1):
        status, _, body = send(tf1.server, "GET /monitoring/prometheus/metrics")
        assert status == 200
        assert "# TYPE" in body.decode()

    def test_predict_uds(self, tf1):
        with grpc.insecure_channel(f"unix:{tf1.socket}") as channel:
            verify_predict(grpc_stubs(channel).predictions, 3.0, specify_output=False)

    def test_profiler_service_is_not_served(self, tf1):
        """A documented difference (README, compatibility): TF Serving registers TensorFlow's
        profiler service on its gRPC port (``test_profiler_service_with_valid_trace_request``);
        the engine does not, and says so with UNIMPLEMENTED rather than hanging."""
        channel = tf1.server.channel()
        call = channel.unary_unary("/tensorflow.ProfilerService/Profile",
                                       request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as info:
            call(b"", timeout=DEADLINE)
        channel.close()
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


# ---- the TF2 half_plus_two and the models the integration tests save themselves ----

TF2_MODELS = ("saved_model_half_plus_two_tf2_cpu", "tf_saved_model_save",
              "tf_saved_model_save_multiple_signatures", "keras_sequential_saved_model_save",
              "distrat_keras_sequential_saved_model_save", "saved_model_counter")


@pytest.fixture(scope="class")
def tf2(tfs_models, tmp_path_factory):
    """``default`` = saved_model_half_plus_two_tf2_cpu; the others under their own names."""
    paths = {("default" if m == TF2_MODELS[0] else m): tfs_models[m] for m in TF2_MODELS}
    with engine_stubs(config_file(tmp_path_factory.mktemp("tf2"), paths)) as api:
        yield api


class TestTf2Models:
    """The TF2 cases of ``tensorflow_model_server_test.py``: half_plus_two written by
    ``tf.saved_model.save`` (every signature has the predict method name) and the SavedModels
    its tests save themselves; then the TF1 counter model of ``predict_impl_test.cc``."""

    def test_classify_tf2(self, tf2):
        check_classify(tf2)

    def test_regress_tf2(self, tf2):
        check_regress(tf2)

    def test_multi_inference_tf2(self, tf2):
        """The two signatures read two different input tensors, both fed the same examples."""
        check_multi_inference(tf2)

    def test_tf_saved_model_save(self, tf2):
        """``y = 3 * 2 * x`` over an input of unknown rank."""
        verify_predict(tf2.predictions, 12.0, model="tf_saved_model_save", specify_output=False)

    def test_tf_saved_model_save_multiple_signatures(self, tf2):
        model = "tf_saved_model_save_multiple_signatures"
        verify_predict(tf2.predictions, 2.0, model=model, signature="custom_signature_key")
        verify_predict(tf2.predictions, 1.0, model=model)

    def test_sequential_keras_saved_model_save(self, tf2):
        verify_predict(tf2.predictions, 2.0, model="keras_sequential_saved_model_save",
                       batch_input=True, specify_output=False)

    def test_distrat_sequential_keras_saved_model_save(self, tf2):
        verify_predict(tf2.predictions, 2.0, model="distrat_keras_sequential_saved_model_save",
                       batch_input=True, specify_output=False)

    def test_counter_signatures_without_inputs(self, tf2):
        """``predict_impl_test.cc`` PredictionWithCustomizedSignatures: stateful signatures
        with no inputs (and one scalar input), answered with scalar float outputs."""
        def call(signature, output_filter=(), **inputs):
            req = request(predict_pb2.PredictRequest, "saved_model_counter", signature,
                          version=VERSION, output_filter=list(output_filter),
                          inputs={k: tensor(v, typed=True) for k, v in inputs.items()})
            return tf2.predictions.Predict(req, timeout=DEADLINE)

        def expected(signature, value):
            response = predict_pb2.PredictResponse()
            response.model_spec.name, response.model_spec.signature_name = (
                "saved_model_counter", signature)
            response.model_spec.version.value = VERSION
            output = response.outputs["output"]
            output.dtype = types_pb2.DT_FLOAT
            output.tensor_shape.SetInParent()
            output.float_val.append(value)
            return response

        assert call("get_counter") == expected("get_counter", 0)
        assert call("incr_counter") == expected("incr_counter", 1)
        assert call("reset_counter") == expected("reset_counter", 0)
        assert call("incr_counter", ["output"]) == expected("incr_counter", 1)
        assert call("incr_counter_by", delta=3) == expected("incr_counter_by", 4)


# ---- model config files ----

@pytest.fixture(scope="class")
def good_config(tfs_models):
    with engine_stubs(f"--model_config_file={tfs_models['good_model_config']}") as api:
        yield api


class TestGoodModelConfig:
    """``--model_config_file`` = good_model_config.txt with TF Serving's paths filled in."""

    def test_good_model_config(self, good_config):
        for model, expected in (("half_plus_two", 3.0), ("half_plus_three", 4.0)):
            verify_predict(good_config.predictions, expected, model=model)
            verify_predict(good_config.predictions, expected, model=model, specify_output=False)

    def test_quick_start_curl_predict(self, good_config):
        """The README's quick start: ``curl -d '{"instances": [1.0, 2.0, 5.0]}' -X POST
        http://localhost:8501/v1/models/half_plus_two:predict`` (curl -d sends a form type)."""
        got = send_json(good_config.server, "POST /v1/models/half_plus_two:predict",
                    '{"instances": [1.0, 2.0, 5.0]}',
                    {"Content-Type": "application/x-www-form-urlencoded"})
        assert got == (200, {"predictions": [2.5, 3.0, 4.5]})


def test_bad_model_config(tfs_models):
    status, log = exit_status(f"--model_config_file={tfs_models['bad_model_config']}")
    assert status not in (None, 0), log
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in log


def _write_config(path: Path, name: str, base_path: Path) -> None:
    """Replace the config file in one rename, so that a poll never reads half of it."""
    staging = path.with_suffix(".staging")
    staging.write_text(models_config({name: base_path}))
    os.replace(staging, path)


def _answers(api, model: str) -> bool:
    try:
        verify_predict(api.predictions, {"half_plus_two": 3.0, "half_plus_three": 4.0}[model],
                       model=model, specify_output=False)
        return True
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
        return False


def test_model_config_reload(tfs_models, tmp_path):
    """With a 1 s poll period a rewritten config file is applied (TF Serving's test waits
    10 s; this one waits until half_plus_three answers)."""
    config = tmp_path / "model_config.txt"
    _write_config(config, "half_plus_two", tfs_models["saved_model_half_plus_two_cpu"])
    with engine_stubs(f"--model_config_file={config}",
                      "--model_config_file_poll_wait_seconds=1") as api:
        assert _answers(api, "half_plus_two")
        _write_config(config, "half_plus_three", tfs_models["saved_model_half_plus_three"])
        wait_until(lambda: _answers(api, "half_plus_three"), timeout=60)


def test_model_config_reload_with_zero_poll_period(tfs_models, tmp_path):
    """With poll period 0 the config file is read once: for TF Serving's ``poll_period + 1``
    seconds after the rewrite, half_plus_three never appears and half_plus_two keeps
    answering (a window in which nothing may happen; no wait for an event)."""
    config = tmp_path / "model_config.txt"
    _write_config(config, "half_plus_two", tfs_models["saved_model_half_plus_two_cpu"])
    with engine_stubs(f"--model_config_file={config}",
                      "--model_config_file_poll_wait_seconds=0") as api:
        assert _answers(api, "half_plus_two")
        _write_config(config, "half_plus_three", tfs_models["saved_model_half_plus_three"])
        window_ends = time.monotonic() + 1.0
        while time.monotonic() < window_ends:
            assert not _answers(api, "half_plus_three")
            time.sleep(0.1)  # pacing inside the window, not a wait for something to happen
        assert _answers(api, "half_plus_two")


# ---- server flags ----

def test_good_grpc_channel_args(tfs_models):
    """The arguments TF Serving's test passes, plus the ``grpc.so_reuseaddr=1`` its
    ``RunServer`` appends."""
    args = "grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb,grpc.so_reuseaddr=1"
    with engine_stubs(*single_model(tfs_models["saved_model_half_plus_two_cpu"]),
                      f"--grpc_channel_arguments={args}") as api:
        verify_predict(api.predictions, 3.0, specify_output=False)


def test_predict_with_batching(tfs_models):
    """``_TestPredict`` with ``batching_parameters_file`` (a path of TF Serving's test base no
    test of the file takes today): its testdata's batching config with ``--enable_batching``."""
    with engine_stubs(*single_model(tfs_models["saved_model_half_plus_two_cpu"]),
                      "--enable_batching",
                      f"--batching_parameters_file={tfs_models['batching_config']}") as api:
        verify_predict(api.predictions, 3.0)
        verify_predict(api.predictions, 3.0, specify_output=False)


def test_bad_model_keeps_server_from_starting(tfs_models):
    """``bad_half_plus_two`` is a bare TF1 checkpoint in version directory 00000123: TF
    Serving aspires it (any numeric directory is a version), its load fails (Session Bundle
    support is removed), so the initial load fails and the server exits instead of serving
    (``ServerCore::WaitUntilModelsAvailable``, ``main.cc``)."""
    status, log = exit_status(*single_model(tfs_models["bad_half_plus_two"]),
                              "--max_num_load_retries=0")
    assert status not in (None, 0), log
    assert "1 model(s) did not become available" in log
    assert "Session Bundle is deprecated and removed." in log


# ---- TFLite ----

TFLITE_SIGDEF = "saved_model_half_plus_two_tflite_with_sigdef"


@pytest.fixture(scope="class")
def tflite(tfs_models, tmp_path_factory):
    """``--prefer_tflite_model``: ``default`` = saved_model_half_plus_two_tflite (no
    SignatureDef), and the variant with its SignatureDef embedded."""
    paths = {"default": tfs_models["saved_model_half_plus_two_tflite"],
             TFLITE_SIGDEF: tfs_models[TFLITE_SIGDEF]}
    with engine_stubs(config_file(tmp_path_factory.mktemp("tflite"), paths),
                      "--prefer_tflite_model=true") as api:
        yield api


def _tensor_info(name: str, dtype: int, shape: tuple) -> meta_graph_pb2.TensorInfo:
    info = meta_graph_pb2.TensorInfo(name=name, dtype=dtype)
    for size in shape:
        info.tensor_shape.dim.add().size = size
    return info


def _signature(inputs: dict, outputs: dict) -> meta_graph_pb2.SignatureDef:
    """A predict SignatureDef of ``{alias: (tensor name, dtype, shape)}``."""
    return meta_graph_pb2.SignatureDef(
        inputs={k: _tensor_info(*v) for k, v in inputs.items()},
        outputs={k: _tensor_info(*v) for k, v in outputs.items()},
        method_name="tensorflow/serving/predict")


class TestTfLite:
    """``testPredictOnTfLite`` and ``testPredictWithSignatureDefOnTfLite``, then the metadata
    and batch cases of ``tflite_session_test.cc`` (BasicTest, ModelFromLegacyConverterWithSigdef)
    on the same two models."""

    def test_predict_on_tflite(self, tflite):
        verify_predict(tflite.predictions, 3.0, specify_output=False)

    def test_predict_with_signature_def_on_tflite(self, tflite):
        verify_predict(tflite.predictions, 3.0, model=TFLITE_SIGDEF, specify_output=False)

    @pytest.mark.parametrize(("model", "input_tensor"), [("default", "x"),
                                                         (TFLITE_SIGDEF, "tflite_input")])
    def test_tflite_signature_def(self, tflite, model, input_tensor):
        """Without an embedded SignatureDef TF Serving makes ``serving_default`` from the
        tensor names; an embedded one's ``tflite_input:0`` falls back to the tensor's name."""
        float_ = types_pb2.DT_FLOAT
        assert metadata(tflite, model) == {DEFAULT_SIGNATURE: _signature(
            {"x": (input_tensor, float_, (1, 1))}, {"y": ("y", float_, (1, 1))})}

    @pytest.mark.parametrize("model", ["default", TFLITE_SIGDEF])
    def test_tflite_resizes_input_to_the_request(self, tflite, model):
        response = tflite.predictions.Predict(request(
            predict_pb2.PredictRequest, model, inputs={"x": tensor([1, 2, 3], typed=True)}),
            timeout=DEADLINE)
        y = response.outputs["y"]
        assert (list(y.float_val), [d.size for d in y.tensor_shape.dim]) == ([2.5, 3, 3.5], [3])

    def test_tflite_input_of_another_dtype_is_refused(self, tflite):
        """A documented difference (README, compatibility): TF Serving's TFLite session copies
        the fed bytes whatever their dtype; the engine refuses, in a session's words."""
        with pytest.raises(grpc.RpcError) as info:
            tflite.predictions.Predict(request(predict_pb2.PredictRequest, "default", inputs={
                "x": tensor([1, 2], "int32", typed=True)}), timeout=DEADLINE)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details() == "Expects arg[0] to be float but int32 is provided"


def test_every_name_is_unavailable_until_the_initial_load_is_done(tmp_path, tfs_models):
    """A documented difference (README, compatibility): ``tensorflow_model_server`` opens no
    port before its initial load is done; the engine does, and answers every model name, known
    or not, UNAVAILABLE until then, so TF Serving's ``WaitForServerReady`` (which takes a
    ``Servable`` NOT_FOUND for "ready") never sees a model still loading."""
    base = tmp_path / "later"
    base.mkdir()
    with serving(*single_model(base), wait="healthz") as server, server.channel() as channel:
        api = grpc_stubs(channel)
        for name in ("default", "intentionally_missing_model"):
            with pytest.raises(grpc.RpcError) as info:
                api.predictions.Predict(predict_pb2.PredictRequest(
                    model_spec={"name": name}), timeout=DEADLINE)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "Servable" not in info.value.details()
        assert send_json(server, "GET /v1/models/default")[0] == 503
        shutil.copytree(tfs_models["saved_model_half_plus_two_cpu"] / f"{VERSION:08d}",
                        base / f"{VERSION:08d}")
        server.wait_for("/readyz")
        verify_predict(api.predictions, 3.0, specify_output=False)
        with pytest.raises(grpc.RpcError) as info:
            api.predictions.Predict(predict_pb2.PredictRequest(
                model_spec={"name": "intentionally_missing_model"}), timeout=DEADLINE)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_parse_example_tflite_is_refused_with_tflites_words(tfs_models):
    """A documented difference (README, compatibility): TF Serving's TFLite session registers
    the ParseExampleV2 custom op (``tflite_session_test.cc``); TFLite's Python runtime has no
    such op, so the version fails to load with TFLite's own error and the initial load fails,
    as it does in TF Serving for any version that cannot load."""
    status, log = exit_status(*single_model(tfs_models["parse_example_tflite"]),
                              "--prefer_tflite_model=true", "--max_num_load_retries=0")
    assert status not in (None, 0), log
    assert "Encountered unresolved custom op: ParseExampleV2" in log


# ---- http_rest_api_handler_test.cc ----

HANDLER_MODEL = "saved_model_half_plus_two_2_versions"
M = f"/v1/models/{HANDLER_MODEL}"
LABEL = "Version_Label"


@pytest.fixture(scope="class")
def handler(tfs_models, tmp_path_factory):
    """saved_model_half_plus_two_2_versions with only version 123, then the label
    ``Version_Label`` on it, set as the handler test sets it: by a config reload once the
    version is available (TF Serving refuses labels on versions that are not)."""
    paths = {HANDLER_MODEL: tfs_models[HANDLER_MODEL]}
    policies = {HANDLER_MODEL: f" model_version_policy {{ specific {{ versions: {VERSION} }} }}"}
    with engine_stubs(config_file(tmp_path_factory.mktemp("handler"), paths,
                                  policies=policies)) as api:
        labelled = text_format.Parse(
            models_config(paths, {HANDLER_MODEL: {LABEL: VERSION}}, policies),
            model_server_config_pb2.ModelServerConfig())
        response = api.models.HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(config=labelled), timeout=60)
        assert response.status.error_code == 0, response.status.error_message
        yield api


AVAILABLE_123 = {"model_version_status": [
    {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
REGRESS_80 = '{"signature_name": "regress_x_to_y", "examples": [ { "x": 80.0 } ] }'
HANDLER_OK = [  # (test, request line, body, expected JSON)
    ("Predict", f"POST {M}:predict", '{"instances": [[1.0, 2.0], [3.0, 4.0]]}',
     {"predictions": [[2.5, 3.0], [3.5, 4.0]]}),
    ("Predict", f"POST {M}/versions/123:predict", '{"instances": [1.0, 2.0]}',
     {"predictions": [2.5, 3.0]}),
    ("Predict", f"POST {M}/labels/{LABEL}:predict", '{"instances": [1.0, 2.0]}',
     {"predictions": [2.5, 3.0]}),
    ("Predict", f"POST {M}/versions/123:predict",
     '{"signature_name": "serving_default", "instances": [3.0, 4.0]}',
     {"predictions": [3.5, 4.0]}),
    ("Predict", f"POST {M}/versions/123:predict",
     '{"signature_name": "serving_default", "inputs": [3.0, 4.0]}', {"outputs": [3.5, 4.0]}),
    ("Regress", f"POST {M}:regress", REGRESS_80, {"results": [42]}),
    ("Regress", f"POST {M}/versions/123:regress", REGRESS_80, {"results": [42]}),
    ("Regress", f"POST {M}/labels/{LABEL}:regress", REGRESS_80, {"results": [42]}),
    ("Classify", f"POST {M}:classify",
     '{"signature_name": "classify_x_to_y", "examples": [ { "x": 20.0 } ] }',
     {"results": [[["", 12]]]}),
    ("Classify", f"POST {M}/labels/{LABEL}:classify",
     '{"signature_name": "classify_x_to_y", "examples": [ { "x": 10.0 } ] }',
     {"results": [[["", 7]]]}),
    ("GetStatus", f"GET {M}", None, AVAILABLE_123),
    ("GetStatus", f"GET {M}/versions/123", None, AVAILABLE_123),
    ("GetStatus", f"GET {M}/labels/{LABEL}", None, AVAILABLE_123),
]
HANDLER_ERRORS = [  # (test, request line, body, HTTP status, part of the error message)
    *(("UnsupportedApiCalls", line, "", 400, part) for line, part in [
        ("GET /v1/foo", "Malformed request"),
        ("POST /v1/foo", "Malformed request"),
        ("GET /v1/models/debug/model_name", "Malformed request"),
        ("POST /v1/models", "Malformed request"),
        ("GET /v1/models/foo:predict", "Malformed request"),
        ("GET /v1/models/foo/version/50:predict", "Malformed request"),
        ("POST /v1/models/foo/version/50:regress", "Malformed request"),
        ("POST /v1/models/foo/versions/HELLO:regress", "Malformed request"),
        (f"POST /v1/models/foo/versions/{2**64 - 1}:regress", "Failed to convert version"),
        ("POST /v1/models/foo/metadata", "Malformed request"),
        ("POST /v1/models/foo/label/some_label:regress", "Malformed request"),
        ("POST /v1/models/foo/versions/50/labels/some_label:regress", "Malformed request"),
        ("POST /v1/models/foo/versions/some_label:regress", "Malformed request")]),
    *(("PredictModelNameVersionErrors", line, '{ "instances": [1] }', 404, "") for line in [
        "POST /v1/models/foo:predict", "POST /v1/models/foo/versions/50:predict",
        f"POST {M}99:predict"]),
    ("PredictRequestErrors", f"POST {M}:predict", "", 400,
     "JSON Parse error: The document is empty"),
    ("PredictRequestErrors", f"POST {M}:predict", "instances = [1, 2]", 400,
     "JSON Parse error: Invalid value"),
    ("PredictRequestErrors", f"POST {M}:predict", '{ "instances": ["x", "y"] }', 400,
     "not of expected type: float"),
    ("PredictRequestErrors", f"POST {M}/labels/Version_Nonexistent:predict",
     '{ "instances": ["x", "y"] }', 400, "Unrecognized servable version label"),
    ("PredictRequestErrors", f"POST {M}:predict", '{ "signature_name": 100 }', 400,
     "'signature_name' key must be a string value."),
]


def _case_ids(cases):
    return [f"{c[0]}-{c[1]}" for c in cases]


class TestHttpRestApiHandler:
    """``http_rest_api_handler_test.cc``: every request of its tests, with its expected status
    class (400 for InvalidArgument, 404 for NotFound) and message."""

    @pytest.mark.parametrize(("case", "request_line", "body", "expected"), HANDLER_OK,
                             ids=_case_ids(HANDLER_OK))
    def test_ok(self, handler, case, request_line, body, expected):
        assert send_json(handler.server, request_line, body) == (200, expected)

    @pytest.mark.parametrize(("case", "request_line", "body", "status", "part"), HANDLER_ERRORS,
                             ids=_case_ids(HANDLER_ERRORS))
    def test_error(self, handler, case, request_line, body, status, part):
        got_status, got = send_json(handler.server, request_line, body)
        assert got_status == status, got
        assert part in got["error"]

    @pytest.mark.parametrize("path", ["/statuspage", "/index"])
    def test_path_regex(self, handler, path):
        """kPathRegex: only /v1/... reaches the REST API; other paths are a plain 404."""
        status, content_type, _ = send(handler.server, f"GET {path}")
        assert status == 404
        assert not (content_type or "").startswith("application/json")

    def test_get_model_metadata(self, handler, tfs_models):
        """Compared as rapidjson compares documents: objects in any order, arrays in order."""
        expected = json.loads(tfs_models["saved_model_half_plus_two_2_versions_metadata"]
                              .read_text())
        assert send_json(handler.server, f"GET {M}/metadata") == (200, expected)

