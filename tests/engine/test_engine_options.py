"""Engine flags beyond the APIs: --engine, flag checks, TFLite servables, Unix socket, warmup."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.helpers import http_json, run_servectl, serving, wait_until
from tests.model_builders import save_module
from tf_serving_platform.export.tflite import convert
from tf_serving_platform.servectl.engine_process import EngineProcess, children
from tf_serving_platform.serving import codec
from tf_serving_platform.serving.engine.servable import TFLITE_FILE


class Scale(tf.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = tf.Variable(factor)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def predict(self, x):
        return {"y": self.factor * x}


def save_scale(path, factor: float):
    module = Scale(factor)
    save_module(module, path, {"serving_default": module.predict})
    return path


def predict_rest(engine: EngineProcess, model: str, values: list[float]) -> dict:
    return http_json(f"{engine.rest_url}/v1/models/{model}:predict", {"instances": values},
                     timeout=30)[1]


def test_prefer_tflite_model_serves_model_tflite(tmp_path):
    version = save_scale(tmp_path / "scale" / "1", 1.0)           # the SavedModel: y = x
    tflite_source = save_scale(tmp_path / "double", 2.0)          # the TFLite file: y = 2x
    (version / TFLITE_FILE).write_bytes(convert(tflite_source, "fp32"))
    flags = ("--model_name=scale", f"--model_base_path={version.parent}")
    with serving(*flags, "--prefer_tflite_model") as with_flag, serving(*flags) as without:
        assert predict_rest(with_flag, "scale", [1.5, 2.0]) == {"predictions": [3.0, 4.0]}
        assert predict_rest(without, "scale", [1.5, 2.0]) == {"predictions": [1.5, 2.0]}
        _, metadata = http_json(f"{with_flag.rest_url}/v1/models/scale/metadata")
        signature = metadata["metadata"]["signature_def"]["signature_def"]
        assert signature["serving_default"]["inputs"]["x"]["dtype"] == "DT_FLOAT"


def test_grpc_on_a_unix_socket(tmp_path):
    save_scale(tmp_path / "scale" / "1", 3.0)
    socket_path = tmp_path / "grpc.sock"
    with serving("--model_name=scale", f"--model_base_path={tmp_path / 'scale'}",
                 f"--grpc_socket_path={socket_path}"):
        import grpc

        stub = prediction_service_pb2_grpc.PredictionServiceStub(
            grpc.insecure_channel(f"unix:{socket_path}"))
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "scale"
        request.inputs["x"].CopyFrom(codec.ndarray_to_tensor_proto(np.array([2.0], "float32")))
        assert list(stub.Predict(request, timeout=10).outputs["y"].float_val) == [6.0]


def test_corrupt_warmup_file_fails_the_load_with_its_reason(tmp_path):
    version = save_scale(tmp_path / "scale" / "1", 1.0)
    (version / "assets.extra").mkdir()
    (version / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"\x07" * 40)
    engine = EngineProcess("--model_name=scale", f"--model_base_path={version.parent}",
                           "--max_num_load_retries=0").start(wait=None)
    assert engine.process.wait(60) == 255
    assert "Please verify your warmup data is in TFRecord format." in engine.log()


@pytest.mark.parametrize(("flags", "message"), [
    (["--model_name=m", "--model_base_path=/m", "--batching_parameters_file=/b"],
     "batching_parameters_file is set without setting server_options.enable_batching"),
    (["--model_name=m", "--model_base_path=relative/path"],
     "Expected model m to have an absolute path or URI; got base_path()=relative/path"),
    (["--model_name=m"], "Both server_options.model_base_path and "
                         "server_options.model_config_file are empty!"),
    (["--model_base_path=/m", "--port=0"], "cannot both be zero or empty"),
    (["--model_base_path=/m", "--enable_batching=maybe"], "expected true or false"),
    (["--engine=tfserving", "--model_base_path=/m"], "tensorflow_model_server is not on PATH"),
])
def test_bad_flags_give_one_line_and_exit_2(flags, message):
    result = run_servectl("serve", *flags)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_engine_auto_execs_tensorflow_model_server_with_the_same_flags(tmp_path):
    # The real binary cannot be installed on this machine (no Docker, no release for it here):
    # a stand-in on PATH records the argv it was exec'd with.
    recorded = tmp_path / "argv.json"
    fake = tmp_path / "bin" / "tensorflow_model_server"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport json, sys\n"
                    f"json.dump(sys.argv[1:], open({str(recorded)!r}, 'w'))\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env_path = f"{fake.parent}{os.pathsep}{os.environ['PATH']}"
    os.environ["PATH"], saved = env_path, os.environ["PATH"]
    try:
        result = run_servectl("serve", "--engine=auto", "--port=8600", "--rest_api_port=8601",
                              "--model_base_path=/models/m", "--grace_period_seconds=5",
                              "--enable_batching")
    finally:
        os.environ["PATH"] = saved
    assert result.returncode == 0, result.stderr
    assert json.loads(recorded.read_text()) == ["--port=8600", "--rest_api_port=8601",
                                                "--model_base_path=/models/m",
                                                "--enable_batching"]


@pytest.mark.parametrize(("model", "inputs", "output"), [
    ("tf1_graph", {"x": np.array([1.0, 2.0], np.float32)}, "y"),
    ("half_plus_two", {"x": np.array([1.0, 2.0], np.float32)}, "y"),
    ("strings", {"text": np.array([b"ab", b"xyz"], object)}, "length"),
])
def test_session_runner_answers_like_the_tf2_function(test_models, model, inputs, output):
    """The engine runs signatures in a session by tensor name (TensorFlow Serving's way); on
    inputs of the declared shapes it must agree with the TF2 concrete function."""
    from tf_serving_platform.serving.engine.servable import load_saved_model

    path = test_models[model] / "1"
    servable = load_saved_model(model, 1, path, {"serve"}, tf.compat.v1.ConfigProto())
    function = tf.saved_model.load(str(path)).signatures["serving_default"]
    assert servable.kind == "TF1"
    np.testing.assert_array_equal(
        servable.run("serving_default", inputs, [output])[output],
        function(**{k: tf.constant(v) for k, v in inputs.items()})[output].numpy())


def test_workers_share_the_ports_stop_together_and_a_dead_one_is_restarted(tmp_path):
    save_scale(tmp_path / "scale" / "1", 2.0)
    ready = "all configured models are available"
    with serving("--model_name=scale", f"--model_base_path={tmp_path / 'scale'}",
                 "--workers=2") as engine:
        # Both workers must have loaded before the pool counts as up; /readyz answers from
        # whichever worker the kernel picks, so wait on both workers' own words instead.
        wait_until(lambda: engine.log().count(ready) == 2, timeout=180)
        answers = {json.dumps(predict_rest(engine, "scale", [float(i)])) for i in range(40)}
        assert answers == {json.dumps({"predictions": [2.0 * i]}) for i in range(40)}
        workers = children(engine.process.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)  # as the OOM killer would
        wait_until(lambda: engine.log().count(ready) == 3, timeout=180)
        assert f"worker {workers[0]} died (signal SIGKILL); restarting it in 1s" in engine.log()
        assert predict_rest(engine, "scale", [1.0]) == {"predictions": [2.0]}
    assert engine.log().count("Exporting HTTP/REST API") == 3


def test_tensorflow_model_server_flags_without_effect_here_are_accepted_and_named(tmp_path):
    """A command line written for ``tensorflow_model_server`` runs unchanged; the flags the
    embedded engine cannot honour say so once each, and defaults stay silent."""
    save_scale(tmp_path / "scale" / "1", 3.0)
    with serving("--model_name=scale", f"--model_base_path={tmp_path / 'scale'}",
                 "--rest_api_num_threads=8", "--enable_profiler=false",
                 "--per_process_gpu_memory_fraction=0.5",
                 "--flush_filesystem_caches=true") as engine:
        assert predict_rest(engine, "scale", [1.0]) == {"predictions": [3.0]}
    warned = set(re.findall(r"(--\w+) has no effect in the embedded engine", engine.log()))
    assert warned == {"--rest_api_num_threads", "--enable_profiler",
                      "--per_process_gpu_memory_fraction"}
