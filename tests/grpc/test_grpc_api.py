"""gRPC conformance: the real engine against TensorFlow Serving's wire contract.

Read-only calls go to the shared ``engine``. MultiInference on a shared input tensor and
HandleReloadConfigRequest use a module-scoped engine of their own (``own``); ``base_config`` puts
its starting config back after each test that changes it. Cases marked ``xfail(strict=True)``
document a deviation of the engine from TensorFlow Serving that still has to be fixed.
"""

from __future__ import annotations

import asyncio
import shutil
from functools import partial
from types import SimpleNamespace

import grpc
import pytest
import tensorflow as tf
from google.protobuf import descriptor_pb2, text_format
from grpc._cython import cygrpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tensorflow.core.framework import types_pb2 as dt
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
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
    serving,
    tensor,
    version_states,
    wait_until,
)
from tf_serving_platform.serving.engine.grpc_api import _abort_on_error
from tf_serving_platform.serving.engine.tracing import OFF
from tf_serving_platform.serving.errors import ServingError

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
PRECONDITION, UNIMPLEMENTED = grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNIMPLEMENTED
CLASSIFY, REGRESS = "tensorflow/serving/classify", "tensorflow/serving/regress"
HPT, NF, LONG = "half_plus_two", "Servable not found for request: ", "n" * 1100


class Starts(str):
    """An expected error text of which only the start is fixed (the rest is a DebugString)."""


def case(case_id: str, *values, xfail: str | None = None):
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(*values, id=case_id, marks=marks)


def predict(name=HPT, inputs=None, output_filter=(), **kw):
    inputs = {"x": tensor([1.0, 2.0, 5.0])} if inputs is None else inputs
    return request(predict_pb2.PredictRequest, name, inputs=inputs, output_filter=output_filter,
                   **kw)


def on_examples(cls, default_signature):
    return lambda signature=default_signature, inp=None, **kw: request(
        cls, signature=signature, input=inp or model_input(1.0), **kw)


classify = on_examples(classification_pb2.ClassificationRequest, "classify_x_to_y")
regress = on_examples(regression_pb2.RegressionRequest, "regress_x_to_y")
metadata = partial(request, get_model_metadata_pb2.GetModelMetadataRequest,
                   metadata_field=["signature_def"])
status = partial(request, get_model_status_pb2.GetModelStatusRequest)


def check_error(call, message, code, text):
    with pytest.raises(grpc.RpcError) as info:
        call(message, timeout=DEADLINE)
    details = info.value.details() or ""
    assert info.value.code() == code, details
    assert details.startswith(text) if isinstance(text, Starts) else details == text, details


def classes(result):
    return [[(c.label, c.score) for c in cl.classes] for cl in result.classifications]


@pytest.fixture(scope="module")
def shared(engine):
    with engine.channel() as channel:
        yield grpc_stubs(channel)


# ---- successful calls on the shared engine ----

def out(dtype, field, values, shape=None):
    return dtype, field, list(values), [len(values)] if shape is None else shape


def f32(*values, shape=None):
    return out(dt.DT_FLOAT, "float_val", values, shape)


Y = {"y": f32(2.5, 3.0, 4.5)}
SHORT = tensor([1.0], typed=True)
SHORT.tensor_shape.dim[0].size = 3  # typed values shorter than the shape: the last one repeats
AB = {"a": tensor([2, 3]), "b": tensor([4, 5])}
MANY = {"x": tensor([[1, 5, 3], [4, 2, 0]])}
SCALED = f32(10, 50, 30, 40, 20, 0, shape=[2, 3])
DTYPES = {  # input: (numpy dtype, values, TF dtype, typed field of the output)
    "f32": ("float32", [1.5, -2.0], dt.DT_FLOAT, "float_val"),
    "f64": ("float64", [2.25, 1e300], dt.DT_DOUBLE, "double_val"),
    "i32": ("int32", [-3, 2**31 - 1], dt.DT_INT32, "int_val"),
    "i64": ("int64", [2**40, -1], dt.DT_INT64, "int64_val"),
    "u8": ("uint8", [0, 255], dt.DT_UINT8, "int_val"),
    "i8": ("int8", [-128, 127], dt.DT_INT8, "int_val"),
    "b": ("bool", [True, False], dt.DT_BOOL, "bool_val"),
    "s": (object, [b"a", b"\xff"], dt.DT_STRING, "string_val")}
UPPER = out(dt.DT_STRING, "string_val", [b"AB", b"XYZ"])


@pytest.mark.parametrize("req, signature, outputs", [
    case("tensor_content_input", predict(), "serving_default", Y),
    case("typed_input", predict(inputs={"x": tensor([1, 2, 5], typed=True)}), "serving_default",
         Y),
    case("typed_input_filled", predict(inputs={"x": SHORT}), "serving_default",
         {"y": f32(2.5, 2.5, 2.5)}),
    case("explicit_signature_version", predict(signature="serving_default", version=1),
         "serving_default", Y),
    case("filter_all", predict(output_filter=["y"]), "serving_default", Y),
    case("multi_default", predict("multi_signature"), "serving_default", {"y": f32(2, 4, 10)}),
    case("multi_plus_one", predict("multi_signature", signature="plus_one"), "plus_one",
         {"y": f32(2, 3, 6)}),
    case("two_in_two_out", predict("multi_signature", AB, signature="sum_and_product"),
         "sum_and_product", {"sum": f32(6, 8), "product": f32(8, 15)}),
    case("output_filter", predict("multi_signature", AB, ["product"], signature="sum_and_product"),
         "sum_and_product", {"product": f32(8, 15)}),
    case("many_outputs", predict("many_outputs", MANY), "serving_default",
         {"sum": f32(9, 6), "max": f32(5, 4), "argmax": out(dt.DT_INT64, "int64_val", [1, 0]),
          "scaled": SCALED}),
    case("many_outputs_filter", predict("many_outputs", MANY, ["scaled"]), "serving_default",
         {"scaled": SCALED}),
    case("strings", predict("strings", {"text": tensor([b"ab", b"xyz"], object)}),
         "serving_default", {"length": out(dt.DT_INT64, "int64_val", [2, 3]), "upper": UPPER,
                             "upper_bytes": UPPER}),
    case("tf1_graph", predict("tf1_graph", {"x": tensor([1, 2])}), "serving_default",
         {"y": f32(4, 7)}),
    case("dtypes", predict("dtypes", {k: tensor(v[1], v[0]) for k, v in DTYPES.items()}),
         "serving_default", {f"{k}_out": out(v[2], v[3], v[1]) for k, v in DTYPES.items()}),
])
def test_predict_answers_typed_fields_and_echoes_model_spec(shared, req, signature, outputs):
    response = shared.predictions.Predict(req, timeout=DEADLINE)
    spec = response.model_spec
    assert (spec.name, spec.signature_name, spec.WhichOneof("version_choice"),
            spec.version.value) == (req.model_spec.name, signature, "version", 1)
    fields = {alias: expected[1] for alias, expected in outputs.items()}
    got = {alias: (t.dtype, fields.get(alias), list(getattr(t, fields.get(alias, "float_val"))),
                   [d.size for d in t.tensor_shape.dim]) for alias, t in response.outputs.items()}
    assert got == outputs
    assert not any(t.tensor_content for t in response.outputs.values())


@pytest.mark.parametrize("method", ["Classify", "Regress"])
@pytest.mark.parametrize("inp, expected", [
    (model_input(1.0, 2.0), [2.5, 3.0]),
    (model_input(None, 4.0, context=10.0), [7.0, 4.0]),  # the example's own feature wins
], ids=["example_list", "example_list_with_context"])
def test_classify_and_regress(shared, method, inp, expected):
    req = (classify if method == "Classify" else regress)(inp=inp)
    response = getattr(shared.predictions, method)(req, timeout=DEADLINE)
    spec = response.model_spec
    assert (spec.name, spec.signature_name, spec.version.value) == \
        (HPT, req.model_spec.signature_name, 1)
    if method == "Classify":
        assert classes(response.result) == [[("", y)] for y in expected]
    else:
        assert [r.value for r in response.result.regressions] == expected


def test_metadata_packs_signature_def_map(shared):
    response = shared.predictions.GetModelMetadata(metadata(), timeout=DEADLINE)
    spec = response.model_spec
    assert (spec.name, spec.signature_name, spec.version.value) == (HPT, "", 1)
    assert list(response.metadata) == ["signature_def"]
    packed = response.metadata["signature_def"]
    assert packed.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert packed.Unpack(signatures)
    defs = signatures.signature_def
    assert set(defs) == {"serving_default", "classify_x_to_y", "regress_x_to_y",
                         "__saved_model_init_op"}  # TF lists the internal one too
    x, y = defs["serving_default"].inputs["x"], defs["serving_default"].outputs["y"]
    assert (x.name, x.dtype, [d.size for d in x.tensor_shape.dim], y.dtype) == \
        ("serving_default_x:0", dt.DT_FLOAT, [-1], dt.DT_FLOAT)
    assert list(defs["classify_x_to_y"].inputs) == ["inputs"]


@pytest.mark.parametrize("req", [status(), status(version=1), status(label="ignored")],
                         ids=["latest", "version", "label_ignored"])
def test_model_status(shared, req):
    assert version_states(shared.models.GetModelStatus(req, timeout=DEADLINE)) == \
        [(1, "AVAILABLE", 0, "")]


# ---- errors: (method, request, code, message) ----

SIZE, EMPTY = "input size does not match signature: ", input_pb2.Input()
BAD = tensor([1.0, 2.0])
BAD.tensor_content = BAD.tensor_content[:5]
P, C, R, M = "Predict", "Classify", "Regress", "MultiInference"
MD, ST, HC = "GetModelMetadata", "GetModelStatus", "Check"
CX, RX = (HPT, "classify_x_to_y", CLASSIFY), (HPT, "regress_x_to_y", REGRESS)
ERRORS = [
    case("predict_no_model_spec", P, predict(spec=False), INVALID, "Missing ModelSpec"),
    case("predict_empty_name", P, predict(""), INVALID, "ModelSpec has no name specified."),
    case("unknown_model", P, predict("nope"), NOT_FOUND, NF + "Latest(nope)"),
    case("unknown_version", P, predict(version=99), NOT_FOUND, NF + f"Specific({HPT}, 99)"),
    case("unknown_label", P, predict(label="x"), INVALID, "Unrecognized servable version label: x"),
    case("unknown_signature", P, predict(signature="nope"), PRECONDITION,
         'Serving signature key "nope" not found.'),
    case("missing_input", P, predict("multi_signature", {"a": tensor([1])},
                                     signature="sum_and_product"), INVALID,
         SIZE + "1!=2 len({a}) != len({a,b}). Sent extra: {}. Missing but required: {b}."),
    case("extra_input", P, predict(inputs={"x": tensor([1]), "z": tensor([1])}), INVALID,
         SIZE + "2!=1 len({x,z}) != len({x}). Sent extra: {z}. Missing but required: {}."),
    case("no_input", P, predict(inputs={}), INVALID,
         SIZE + "0!=1 len({}) != len({x}). Sent extra: {}. Missing but required: {x}."),
    case("renamed_input", P, predict(inputs={"z": tensor([1])}), INVALID,
         "Signature input alias: x(feed name: serving_default_x:0) not found in request and no "
         "default value provided. Inputs expected to be in the request {z}, or default input "
         "alias set: "),
    case("unknown_filter", P, predict(output_filter=["nope"]), INVALID, "output tensor alias not "
         "found in signature: nope Outputs expected to be in the set {y}."),
    case("duplicate_filter", P, predict("many_outputs", MANY, ["sum", "max", "sum"]), INVALID,
         "duplicate output tensor alias: sum"),
    case("wrong_dtype", P, predict(inputs={"x": tensor([1, 2], "int64")}), INVALID,
         "Expects arg[0] to be float but int64 is provided"),
    case("float_for_string", P, predict("strings", {"text": tensor([1.0])}), INVALID,
         "Expects arg[0] to be string but float is provided"),
    # Declared shapes are not enforced (TF Serving feeds by tensor name): what the graph cannot
    # compute fails with the kernel's own words (add and mul both fail, with the same words).
    case("shape_the_graph_cannot_compute", P,
         predict("multi_signature", {"a": tensor([1.0, 2.0]), "b": tensor([1.0, 2.0, 3.0])},
                 signature="sum_and_product"),
         INVALID, Starts("Incompatible shapes: [2] vs. [3]")),
    case("bad_tensor_content", P, predict(inputs={"x": BAD}), INVALID, "tensor parsing error: x"),
    case("truncated_not_found", P, predict(LONG), NOT_FOUND,
         f"{NF}Latest({LONG})"[:1024] + "...TRUNCATED"),
    case("classify_no_model_spec", C, classify(spec=False), INVALID, "Missing ModelSpec"),
    case("regress_empty_name", R, regress(name=""), INVALID, "ModelSpec has no name specified."),
    case("classify_no_input", C, classify(inp=EMPTY), INVALID, "Input is empty."),
    case("regress_no_example", R, regress(inp=input_pb2.Input(example_list={})), INVALID,
         "Input is empty."),
    case("classify_unknown_signature", C, classify("nope"), INVALID,
         "No signature was found with the name: nope"),
    case("regress_unknown_model", R, regress(name="nope"), NOT_FOUND, NF + "Latest(nope)"),
    case("regress_no_outputs", R, regress("classify_x_to_y"), INVALID,
         Starts("No regression outputs found in SignatureDef: ")),
    case("classify_no_inputs", C, classify(""), INVALID,
         Starts("No classification inputs found in SignatureDef: ")),
    case("regress_no_inputs", R, regress(""), INVALID,
         Starts("No regression inputs found in SignatureDef: ")),
    case("classify_no_outputs", C, classify("regress_x_to_y"), INVALID,
         Starts('Expected classification signature outputs to contain at least one of '
                '"classes" or "scores". Signature was: ')),
    case("classify_model_before_input", C, classify(name="nope", inp=EMPTY), NOT_FOUND,
         NF + "Latest(nope)"),
    case("multi_two_models", M, multi(CX, ("multi_signature", "", REGRESS)), INVALID,
         "All ModelSpecs in a MultiInferenceRequest must access the same model name."),
    case("multi_duplicate", M, multi(CX, CX), INVALID,
         "Duplicate evaluation of signature: classify_x_to_y"),
    case("multi_predict_method", M, multi((HPT, "", "tensorflow/serving/predict")),
         UNIMPLEMENTED, "Unsupported signature method_name: tensorflow/serving/predict"),
    case("multi_unknown_model", M, multi(("nope", "", CLASSIFY)), NOT_FOUND, NF + "Latest(nope)"),
    case("multi_empty_second_name", M, multi(CX, ("", "regress_x_to_y", REGRESS)), INVALID,
         "Found ModelSpec with an empty model name."),
    case("multi_empty_first_name", M, multi(("", "regress_x_to_y", REGRESS)), INVALID,
         "ModelSpec has no name specified."),
    case("multi_no_task", M, multi(), INVALID, "ModelSpec has no name specified."),
    case("multi_no_input", M, multi(RX, inp=EMPTY), INVALID, "Input is empty."),
    case("multi_unknown_signature", M, multi((HPT, "nope", CLASSIFY)), INVALID,
         "Requested signature not found in model graph: nope"),
    case("metadata_no_model_spec", MD, metadata(spec=False), INVALID, "Missing ModelSpec"),
    case("metadata_no_field", MD, metadata(name="", metadata_field=[]), INVALID,
         "GetModelMetadataRequest must specify at least one metadata_field"),
    case("metadata_bad_field", MD, metadata(name="nope", metadata_field=["signature_def", "x"]),
         INVALID, "Metadata field x is not supported"),
    case("metadata_empty_name", MD, metadata(name=""), INVALID,
         "ModelSpec has no name specified."),
    case("metadata_unknown_version", MD, metadata(version=9), NOT_FOUND,
         NF + f"Specific({HPT}, 9)"),
    case("status_no_model_spec", ST, status(spec=False), INVALID, "Missing ModelSpec"),
    case("status_unknown_model", ST, status(name="nope"), NOT_FOUND,
         "Could not find any versions of model nope"),
    case("status_empty_name", ST, status(name=""), NOT_FOUND,
         "Could not find any versions of model "),
    case("status_unknown_version", ST, status(version=9), NOT_FOUND,
         f"Could not find version 9 of model {HPT}"),
    case("health_unknown_service", HC, health_pb2.HealthCheckRequest(service="nope"), NOT_FOUND,
         ""),
]


@pytest.mark.parametrize("method, req, code, message", ERRORS)
def test_errors(shared, method, req, code, message):
    stub = {ST: shared.models, HC: health_pb2_grpc.HealthStub(shared.channel)}.get(
        method, shared.predictions)
    check_error(getattr(stub, method), req, code, message)


# ---- health and reflection ----

@pytest.mark.parametrize("service", ["", "tensorflow.serving.PredictionService",
                                     "tensorflow.serving.ModelService", "PredictionService",
                                     "ModelService"])
def test_health_serving(shared, service):
    stub = health_pb2_grpc.HealthStub(shared.channel)
    wait_until(lambda: stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=DEADLINE)
               .status == health_pb2.HealthCheckResponse.SERVING, timeout=10)


def test_reflection_lists_and_describes_services(shared):
    stub = reflection_pb2_grpc.ServerReflectionStub(shared.channel)
    requests = [reflection_pb2.ServerReflectionRequest(list_services=""),
                reflection_pb2.ServerReflectionRequest(
                    file_containing_symbol="tensorflow.serving.PredictionService")]
    listed, described = list(stub.ServerReflectionInfo(iter(requests), timeout=DEADLINE))
    assert {"tensorflow.serving.PredictionService", "tensorflow.serving.ModelService",
            "grpc.health.v1.Health"} <= {s.name for s in listed.list_services_response.service}
    files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
             for raw in described.file_descriptor_response.file_descriptor_proto]
    assert {m.name for f in files for s in f.service if s.name == "PredictionService"
            for m in s.method} == {"Classify", "Regress", "Predict", "MultiInference",
                                   "GetModelMetadata"}


# ---- a private engine: MultiInference on a shared input, HandleReloadConfigRequest ----

def save_shared_input_half_plus_two(path) -> None:
    """TF Serving's own half_plus_two layout: classify and regress read one tf.Example input."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        serialized = tf.compat.v1.placeholder(tf.string, [None], name="tf_example")
        x = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]
        y = tf.identity(0.5 * x + 2.0, name="y")
        sigs = tf.compat.v1.saved_model.signature_def_utils
        builder = tf.compat.v1.saved_model.Builder(str(path))
        builder.add_meta_graph_and_variables(session, ["serve"], {
            "classify_x_to_y": sigs.classification_signature_def(serialized, None, y),
            "regress_x_to_y": sigs.regression_signature_def(serialized, y)})
        builder.save()


POLICIES = {"m": " model_version_policy { all {} }"}
NOT_A_LIST = ("ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
              "ModelConfigList is currently supported")


@pytest.fixture(scope="module")
def own(test_models, tmp_path_factory):
    base = tmp_path_factory.mktemp("grpc-own")
    for version in (1, 2):
        shutil.copytree(test_models[HPT] / "1", base / "m" / str(version))
    shutil.copytree(test_models["tf1_graph"], base / "extra")
    save_shared_input_half_plus_two(base / "shared" / "1")
    (base / "broken" / "1").mkdir(parents=True)
    (base / "broken" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    paths = {name: base / name for name in ("m", "extra", "shared")}
    config = base / "models.config"
    config.write_text(models_config(paths, policies=POLICIES))
    with (serving(f"--model_config_file={config}", "--max_num_load_retries=0") as server,
          server.channel() as channel):
        yield grpc_stubs(channel, paths)


def reload_request(paths, labels=None):
    config = text_format.Parse(models_config(paths, labels, POLICIES),
                               model_server_config_pb2.ModelServerConfig())
    return model_management_pb2.ReloadConfigRequest(config=config)


def reload(own, paths=None, labels=None):
    return own.models.HandleReloadConfigRequest(reload_request(paths or own.paths, labels),
                                                timeout=60)


@pytest.fixture
def base_config(own):
    yield own
    reload(own)


def served_version(own, **kw) -> int:
    response = own.predictions.Predict(predict("m", **kw), timeout=DEADLINE)
    assert list(response.outputs["y"].float_val) == [2.5, 3.0, 4.5]
    return response.model_spec.version.value


@pytest.mark.parametrize("order", [(CLASSIFY, REGRESS), (REGRESS, CLASSIFY)])
def test_multi_inference_results_in_task_order(own, order):
    sig = {CLASSIFY: "classify_x_to_y", REGRESS: "regress_x_to_y"}
    response = own.predictions.MultiInference(multi(*[("shared", sig[m], m) for m in order]),
                                              timeout=DEADLINE)
    assert [r.WhichOneof("result") for r in response.results] == \
        [{CLASSIFY: "classification_result", REGRESS: "regression_result"}[m] for m in order]
    for result, method in zip(response.results, order, strict=True):
        spec = result.model_spec
        assert (spec.name, spec.signature_name, spec.version.value) == ("shared", sig[method], 1)
        if method == CLASSIFY:
            assert classes(result.classification_result) == [[("", 2.5)], [("", 3.0)]]
        else:
            assert [r.value for r in result.regression_result.regressions] == [2.5, 3.0]


def test_multi_inference_feeds_each_signature_its_own_input_tensor(shared):
    """TF2 SavedModels give every signature its own input tensor; TF Serving feeds the same
    examples to each (testMultiInferenceTf2)."""
    response = shared.predictions.MultiInference(multi(CX, RX), timeout=DEADLINE)
    assert classes(response.results[0].classification_result) == [[("", 2.5)], [("", 3.0)]]
    assert [r.value for r in response.results[1].regression_result.regressions] == [2.5, 3.0]


def test_status_lists_every_version_highest_first(own):
    """(Ready means the latest version is AVAILABLE, as TensorFlow Serving's start waits for
    ``ServableRequest::Latest``: version 1 may still be loading then.)"""
    assert wait_until(lambda: version_states(own.models.GetModelStatus(
        status(name="m"), timeout=DEADLINE)) == [(2, "AVAILABLE", 0, ""), (1, "AVAILABLE", 0, "")])


def test_reload_moves_label_to_available_version(base_config):
    response = reload(base_config, labels={"m": {"stable": 1}})
    assert response.HasField("status") and response.status.error_code == 0
    assert served_version(base_config, label="stable") == 1
    reload(base_config, labels={"m": {"stable": 2, "canary": 2}})
    assert served_version(base_config, label="stable") == 2
    assert served_version(base_config, label="canary") == 2
    assert served_version(base_config) == 2


STABLE = {"m": {"stable": 1}}


@pytest.mark.parametrize("make, code, message", [
    case("label_on_unavailable_version", lambda paths: reload_request(paths, {"m": {"stable": 7}}),
         PRECONDITION, "Request to assign label to version 7 of model m, which is not currently "
         "available for inference"),
    case("no_config", lambda paths: model_management_pb2.ReloadConfigRequest(), INVALID,
         NOT_A_LIST),
    case("custom_model_config", lambda paths: model_management_pb2.ReloadConfigRequest(
        config={"custom_model_config": {"type_url": "x/y"}}), INVALID, NOT_A_LIST),
])
def test_refused_reload_changes_nothing(base_config, make, code, message):
    reload(base_config, labels=STABLE)
    check_error(base_config.models.HandleReloadConfigRequest, make(base_config.paths), code,
                message)
    assert served_version(base_config, label="stable") == 1
    assert served_version(base_config) == 2


def test_reload_unloads_removed_model_and_waits_for_added_one(base_config):
    reload(base_config, {k: v for k, v in base_config.paths.items() if k != "extra"})
    extra = predict("extra", {"x": tensor([1.0])})

    def refused():
        try:
            base_config.predictions.Predict(extra, timeout=DEADLINE)
        except grpc.RpcError as e:
            return e.code(), e.details()
        return None
    assert wait_until(refused) == (NOT_FOUND, NF + "Latest(extra)")
    wait_until(lambda: version_states(base_config.models.GetModelStatus(
        status(name="extra"), timeout=DEADLINE)) == [(1, "END", 0, "")])
    reload(base_config)  # returns once the re-added model is AVAILABLE
    answer = base_config.predictions.Predict(extra, timeout=DEADLINE)
    assert list(answer.outputs["y"].float_val) == [4]


@pytest.mark.parametrize("prefix", [
    case("code", "1 model(s) did not become available: {{"),
    # WaitUntilModelsAvailable: "{" + ("{" + ServableId::DebugString() + error + "}, ")... + "}"
    case("servable_id", "1 model(s) did not become available: {{{name: broken version: 1} due "
         "to error: "),
])
def test_reload_reports_a_model_that_fails_to_load(base_config, prefix):
    paths = {**base_config.paths, "broken": base_config.paths["m"].parent / "broken"}
    check_error(base_config.models.HandleReloadConfigRequest, reload_request(paths),
                grpc.StatusCode.UNKNOWN, Starts(prefix))
    [(version, state, code, message)] = version_states(base_config.models.GetModelStatus(
        status(name="broken"), timeout=DEADLINE))
    assert (version, state) == (1, "END") and code != 0 and message
    assert served_version(base_config) == 2


class _EndedCall:
    """Stands in for the context of a call the gRPC core ended a moment before its error
    status was sent (a deadline that passes on both sides at once): its ``abort`` fails the
    way grpc.aio's does then. A stand-in, as no real call can be stopped at that instant."""

    def invocation_metadata(self):
        return ()

    def set_trailing_metadata(self, metadata):
        pass

    async def abort(self, code, message):
        raise cygrpc.ExecuteBatchError("Failed \"execute_batch\"")


def test_an_error_for_a_call_that_already_ended_is_a_cancellation_not_a_server_error(caplog):
    @_abort_on_error
    async def expires(self, request, context):
        raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(expires(SimpleNamespace(tracing=OFF), None, _EndedCall()))
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
