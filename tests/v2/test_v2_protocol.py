"""The Open Inference Protocol ("KServe V2") on a real engine, driven by Triton's own clients
(``tritonclient.http`` and ``tritonclient.grpc``; none written here), for four zoo models: the
MLP, the CNN (uint8 images), a string-input model and a five-input model. Answers are checked
against the model's own outputs (the SavedModel run as TensorFlow Serving runs it)."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.helpers import http_json, metric, models_config, monitoring_flag, serving
from tf_serving_platform.export import pipeline
from tf_serving_platform.export.verify import load_as_served, run_signature
from tf_serving_platform.servectl.engine_process import EngineProcess

MODELS = ("digits_mlp", "digits_cnn", "text_classifier", "wide_deep")
KINDS = ("http", "grpc")


@pytest.fixture(scope="module")
def v2_engine(zoo_source, tmp_path_factory):
    base = tmp_path_factory.mktemp("v2-models")
    sources = {name: zoo_source(name) for name in MODELS}
    for source in sources.values():
        pipeline.export_model(source, base, progress=False)
    config = base / "models.config"
    config.write_text(models_config({name: base / name for name in MODELS}))
    with serving(f"--model_config_file={config}", "--enable_v2_protocol", "--enable_batching",
                 monitoring_flag(base)) as engine:
        engine.base, engine.sources = base, sources
        yield engine


def client(kind: str, engine: EngineProcess):
    if kind == "http":
        return httpclient.InferenceServerClient(f"127.0.0.1:{engine.rest_port}")
    return grpcclient.InferenceServerClient(engine.grpc_target)


def module_for(kind: str):
    return httpclient if kind == "http" else grpcclient


def expected(engine, name: str, inputs: dict) -> dict:
    servable = load_as_served(engine.base / name / "1")
    try:
        return run_signature(servable, "serving_default", inputs)
    finally:
        servable.close(0)


def rows(engine, name: str, count: int) -> dict:
    return {k: np.asarray(v[:count]) for k, v in engine.sources[name].data.x_test.items()}


def infer_inputs(kind: str, inputs: dict, binary: bool) -> list:
    module = module_for(kind)
    made = []
    for alias, array in sorted(inputs.items()):
        datatype = "BYTES" if array.dtype == object or array.dtype.kind in "SU" else \
            {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32",
             "uint8": "UINT8"}[array.dtype.name]
        value = array.astype(object) if datatype == "BYTES" else array
        tensor = module.InferInput(alias, list(array.shape), datatype)
        if kind == "http":
            tensor.set_data_from_numpy(value, binary_data=binary)
        else:
            tensor.set_data_from_numpy(value)
        made.append(tensor)
    return made


@pytest.mark.parametrize(("kind", "binary"), [("http", True), ("http", False), ("grpc", True)],
                         ids=["http-binary", "http-json", "grpc-raw"])
@pytest.mark.parametrize("name", MODELS)
def test_infer_answers_the_models_own_outputs(v2_engine, kind, binary, name):
    inputs = rows(v2_engine, name, 3)
    want = expected(v2_engine, name, inputs)
    module = module_for(kind)
    outputs = [module.InferRequestedOutput(alias, binary_data=binary) if kind == "http"
               else module.InferRequestedOutput(alias) for alias in sorted(want)]
    with client(kind, v2_engine) as c:
        result = c.infer(name, infer_inputs(kind, inputs, binary), outputs=outputs)
    for alias, value in want.items():
        got = result.as_numpy(alias)
        if value.dtype == object:
            assert got.tolist() == value.tolist(), alias
        else:
            np.testing.assert_allclose(got, value, rtol=1e-5, atol=1e-6, err_msg=alias)
    response = result.get_response()
    assert (response["model_version"] if kind == "http" else response.model_version) == "1"


def test_grpc_typed_contents_and_repository_index(v2_engine):
    """tritonclient always sends raw_input_contents: typed contents, with the stubs."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    features = rows(v2_engine, "digits_mlp", 2)["pixels"].astype(np.float32)
    request = service_pb2.ModelInferRequest(model_name="digits_mlp", model_version="1")
    tensor = request.inputs.add(name="pixels", datatype="FP32", shape=[2, 64])
    tensor.contents.fp32_contents.extend(features.reshape(-1).tolist())
    with grpc.insecure_channel(v2_engine.grpc_target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        response = stub.ModelInfer(request, timeout=30)
        index = stub.RepositoryIndex(service_pb2.RepositoryIndexRequest(ready=True), timeout=30)
        with pytest.raises(grpc.RpcError) as refused:
            stub.RepositoryModelUnload(service_pb2.RepositoryModelUnloadRequest(
                model_name="digits_mlp"), timeout=30)
    names = [o.name for o in response.outputs]
    got = np.frombuffer(response.raw_output_contents[names.index("probabilities")],
                        dtype="<f4").reshape(2, 10)
    np.testing.assert_allclose(got, expected(v2_engine, "digits_mlp", {"pixels": features})[
        "probabilities"], rtol=1e-5, atol=1e-6)
    assert sorted((m.name, m.version, m.state) for m in index.models) == sorted(
        (name, "1", "READY") for name in MODELS)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize("kind", KINDS)
def test_metadata_readiness_and_versions(v2_engine, kind):
    with client(kind, v2_engine) as c:
        assert c.is_server_live() and c.is_server_ready()
        assert c.is_model_ready("digits_cnn") and c.is_model_ready("digits_cnn", "1")
        assert not c.is_model_ready("digits_cnn", "7")
        server = c.get_server_metadata()
        metadata = c.get_model_metadata("digits_cnn")
    if kind == "grpc":
        server = {"name": server.name, "extensions": list(server.extensions)}
        metadata = {"versions": list(metadata.versions), "platform": metadata.platform,
                    "inputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
                               for t in metadata.inputs]}
    assert server["name"] == "servectl" and "binary_tensor_data" in server["extensions"]
    assert metadata["versions"] == ["1"] and metadata["platform"] == "tensorflow_savedmodel"
    assert metadata["inputs"] == [{"name": "image", "datatype": "UINT8",
                                   "shape": [-1, 8, 8, 1]}]


@pytest.mark.parametrize("kind", KINDS)
def test_errors_keep_tensorflow_servings_texts(v2_engine, kind):
    module = module_for(kind)
    good = infer_inputs(kind, rows(v2_engine, "digits_mlp", 1), binary=True)
    wrong_type = module.InferInput("pixels", [1, 64], "FP64")
    wrong_type.set_data_from_numpy(np.zeros((1, 64)))
    with client(kind, v2_engine) as c:
        with pytest.raises(InferenceServerException) as unknown:
            c.infer("nope", good)
        with pytest.raises(InferenceServerException) as mistyped:
            c.infer("digits_mlp", [wrong_type])
        with pytest.raises(InferenceServerException) as no_signature:
            c.infer("digits_mlp", good, parameters={"signature_name": "zz"})
    assert "Servable not found for request: Latest(nope)" in unknown.value.message()
    assert "Expects arg[0] to be float but double is provided" in mistyped.value.message()
    assert 'Serving signature key "zz" not found' in no_signature.value.message()
    if kind == "http":
        assert unknown.value.status() == "404" and mistyped.value.status() == "400"
    else:
        assert unknown.value.status() == "StatusCode.NOT_FOUND"
        assert mistyped.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_a_signature_by_parameter_and_a_curl_session(v2_engine):
    """``parameters.signature_name`` picks the classify signature's sibling ``serving_default``
    by name; the JSON format needs no client library."""
    body = {"id": "r-1", "parameters": {"signature_name": "serving_default"},
            "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64],
                        "data": rows(v2_engine, "digits_mlp", 1)["pixels"].tolist()}],
            "outputs": [{"name": "probabilities"}]}
    status, answer = http_json(f"{v2_engine.rest_url}/v2/models/digits_mlp/infer", body,
                               timeout=30)
    assert status == 200, answer
    assert answer["id"] == "r-1" and answer["model_name"] == "digits_mlp"
    (output,) = answer["outputs"]
    assert output["name"] == "probabilities" and output["shape"] == [1, 10]
    assert abs(sum(output["data"]) - 1) < 1e-4


def test_v2_calls_are_counted_under_their_own_api_label(v2_engine):
    with client("grpc", v2_engine) as c:
        c.infer("digits_mlp", infer_inputs("grpc", rows(v2_engine, "digits_mlp", 1), True))
    count = metric(v2_engine.rest_url, ':tensorflow:serving:request_latency_count{'
                   'model_name="digits_mlp",API="ModelInfer",entrypoint="GRPC"}')
    assert count >= 1


def test_v2_and_tensorflow_serving_calls_merge_into_one_batch(v2_engine, tmp_path):
    """Nothing below the front ends knows the wire: a V2 infer and a TF Serving Predict for the
    same model, version and signature share a batch (held open two seconds for both)."""
    from concurrent.futures import ThreadPoolExecutor

    batching = tmp_path / "batching.config"
    batching.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 2000000 }\n"
                        "num_batch_threads { value: 1 }\n")
    pixels = rows(v2_engine, "digits_mlp", 1)["pixels"]
    with serving(f"--model_base_path={v2_engine.base / 'digits_mlp'}", "--model_name=digits_mlp",
                 "--enable_v2_protocol", "--enable_batching",
                 f"--batching_parameters_file={batching}", monitoring_flag(tmp_path)) as engine:
        def v2_call():
            with client("grpc", engine) as c:
                return c.infer("digits_mlp", infer_inputs("grpc", {"pixels": pixels}, True)
                               ).as_numpy("probabilities")

        def tf_call():
            status, answer = http_json(f"{engine.rest_url}/v1/models/digits_mlp:predict",
                                       {"instances": pixels.tolist()}, timeout=30)
            assert status == 200, answer
            return np.asarray(answer["predictions"])

        with ThreadPoolExecutor(2) as pool:
            v2_answer, tf_answer = pool.submit(v2_call), pool.submit(tf_call)
            np.testing.assert_allclose(v2_answer.result()[:, :], tf_answer.result(),
                                       rtol=1e-5, atol=1e-6)
        batches = ":tensorflow:serving:batching_session:input_batch_size"
        assert metric(engine.rest_url, f"{batches}_count") == 1
        assert metric(engine.rest_url, f"{batches}_sum") == 2


@pytest.mark.parametrize("wire", ["rest", "grpc"])
def test_the_projects_clients_speak_v2(v2_engine, wire):
    from tf_serving_platform.serving.client import GrpcClient, RestClient, ServingClientError

    make = (lambda: RestClient(v2_engine.rest_url, protocol="v2")) if wire == "rest" else \
        (lambda: GrpcClient(v2_engine.grpc_target, protocol="v2"))
    pixels = rows(v2_engine, "digits_mlp", 2)["pixels"]
    texts = rows(v2_engine, "text_classifier", 2)
    with make() as c:
        got = c.predict("digits_mlp", pixels.tolist())  # Python values, typed by metadata
        np.testing.assert_allclose(got["probabilities"], expected(
            v2_engine, "digits_mlp", {"pixels": pixels})["probabilities"], rtol=1e-5,
            atol=1e-6)
        words = c.predict("text_classifier", texts)
        np.testing.assert_allclose(words["probabilities"], expected(
            v2_engine, "text_classifier", texts)["probabilities"], rtol=1e-5, atol=1e-6)
        assert c.metadata("digits_cnn").signatures["serving_default"].inputs["image"].dtype \
            == "DT_UINT8"
        assert [s.version for s in c.status("digits_cnn")] == [1]
        with pytest.raises(ServingClientError) as labelled:
            c.predict("digits_mlp", pixels, label="stable")
        with pytest.raises(ServingClientError) as missing:
            c.status("digits_cnn", version=7)
        if wire == "grpc":
            assert sorted(m.name for m in c.list_models()) == sorted(MODELS)
    assert labelled.value.code.name == "INVALID_ARGUMENT"
    assert missing.value.code.name == "NOT_FOUND"


def test_servectl_predict_over_v2(v2_engine, tmp_path):
    from tests.helpers import run_servectl

    np.save(tmp_path / "rows.npy", rows(v2_engine, "digits_mlp", 2)["pixels"])
    result = run_servectl("predict", "digits_mlp", "--grpc", v2_engine.grpc_target,
                          "--protocol", "v2", "--npy", f"pixels={tmp_path / 'rows.npy'}")
    assert result.returncode == 0, result.stderr
    assert "probabilities: float32 (2, 10)" in result.stdout and " gRPC " in result.stdout
    assert "V2)" in result.stdout
    listed = run_servectl("predict", "--list", "--grpc", v2_engine.grpc_target,
                          "--protocol", "v2")
    assert listed.returncode == 0, listed.stderr
    assert all(name in listed.stdout for name in MODELS)


def test_servectl_loadtest_over_v2(v2_engine, tmp_path):
    from tests.helpers import run_servectl

    result = run_servectl("loadtest", "--rest", v2_engine.rest_url, "--grpc",
                          v2_engine.grpc_target, "--model", "digits_cnn", "--protocol", "v2",
                          "--users", "2", "--duration", "2s", "--out", str(tmp_path),
                          "--slo-error-rate", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "over REST+gRPC (V2)" in result.stdout
    stats = (tmp_path / "locust_stats.csv").read_text()
    assert "/v2/models/digits_cnn/infer" in stats and "ModelInfer digits_cnn" in stats
    count = metric(v2_engine.rest_url, ':tensorflow:serving:request_count{'
                   'model_name="digits_cnn",status="OK"}')
    assert count > 0


@pytest.mark.parametrize("kind", KINDS)
def test_every_dtype_the_engine_serves_maps_both_ways(test_models, kind):
    """The ``dtypes`` test model echoes one input of each dtype: each V2 datatype reaches the
    signature's dtype and comes back as the same datatype."""
    module = module_for(kind)
    sent = {"f32": ("FP32", np.float32([1.5, -2])), "f64": ("FP64", np.float64([1 / 3, 2])),
            "i32": ("INT32", np.int32([-7, 2**31 - 1])), "i64": ("INT64", np.int64([2**40, -1])),
            "u8": ("UINT8", np.uint8([0, 255])), "i8": ("INT8", np.int8([-128, 5])),
            "b": ("BOOL", np.array([True, False])),
            "s": ("BYTES", np.array([b"ab", b"\xc3\xa9"], dtype=object))}
    with serving(f"--model_base_path={test_models['dtypes']}", "--model_name=dtypes",
                 "--enable_v2_protocol") as engine:
        inputs = []
        for alias, (datatype, array) in sent.items():
            tensor = module.InferInput(alias, [2], datatype)
            if kind == "http":
                tensor.set_data_from_numpy(array, binary_data=True)
            else:
                tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        with client(kind, engine) as c:
            result = c.infer("dtypes", inputs)
        response = result.get_response()
        outputs = response["outputs"] if kind == "http" else [
            {"name": o.name, "datatype": o.datatype} for o in response.outputs]
        datatypes = {o["name"]: o["datatype"] for o in outputs}
        for alias, (datatype, array) in sent.items():
            assert datatypes[f"{alias}_out"] == datatype
            assert result.as_numpy(f"{alias}_out").tolist() == array.tolist(), alias
