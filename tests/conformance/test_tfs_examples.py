"""TensorFlow Serving's example clients and its REST API document, as requests to the engine.

The requests that ``tensorflow_serving/example/mnist_client.py``, ``resnet_client.py`` and
``resnet_client_grpc.py`` send (same model, signature and input names, dtypes, shapes and REST
bodies, built the way the clients build them), on small stand-ins with the names those clients
expect (``benchmarks/tfs_examples/models.py``); ``benchmarks/tfs_examples/run.sh`` runs the
clients themselves, unchanged. Then every request example of TensorFlow Serving's
``g3doc/api_rest.md`` with the answer that document gives: status, metadata, classify and
regress (with ``context`` and ``b64`` features), predict in row and columnar form, binary
values, the JSON mapping table, NaN/Infinity and the ``half_plus_three`` walk-through.

One engine serves every model of this module: ``half_plus_three`` is TF Serving's testdata
model as ``tests/tfs_models.py`` generates it, the others are built here. Answers are compared
with the document or with the model run in-process (TF1 graphs in a ``tf.compat.v1.Session``,
fed by tensor name as TensorFlow Serving runs them).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from benchmarks.tfs_examples import models as examples
from tests.helpers import models_config, send_json, serving
from tests.model_builders import save_module
from tests.tfs_models import VERSION, expected_metadata, half_plus_three
from tf_serving_platform.export import pipeline, sources

v1 = tf.compat.v1
H3 = "saved_model_half_plus_three"
H3_STATUS = {"model_version_status": [{"version": "123", "state": "AVAILABLE",
                                       "status": {"error_code": "OK", "error_message": ""}}]}
DEADLINE_S = 30  # the clients use 5 and 10 s; a busy 2-core machine gets more
MNIST_ROWS = 8
IMAGE_SIZE = 32


# --- models ---------------------------------------------------------------------------------

MAPPING = {"bool": tf.bool, "string": tf.string, "int8": tf.int8, "uint8": tf.uint8,
           "int16": tf.int16, "int32": tf.int32, "uint32": tf.uint32, "int64": tf.int64,
           "uint64": tf.uint64, "float": tf.float32, "double": tf.float64}


def _parse(serialized, **features):
    return tf.io.parse_example(serialized, {name: tf.io.FixedLenFeature(shape, dtype)
                                            for name, (shape, dtype) in features.items()})


class DocExamples(tf.Module):
    """One signature per request example of api_rest.md (beyond ``half_plus_three``)."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="tag"),
                                  tf.TensorSpec([None, 5], tf.int32, name="signal"),
                                  tf.TensorSpec([None, 2, 2], tf.float32, name="sensor")])
    def tag_signal_sensor(self, tag, signal, sensor):
        return {"tag": tf.identity(tag), "signal_sum": tf.reduce_sum(signal, axis=1),
                "sensor_trace": tf.linalg.trace(sensor)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def upper(self, text):
        return {"upper": tf.strings.upper(text)}

    @tf.function(input_signature=[tf.TensorSpec([None, 1, 2], tf.float32, name="x")])
    def pairs(self, x):
        return {"y": 10.0 * x}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="data")])
    def echo_bytes(self, data):
        return {"data_bytes": tf.identity(data)}

    @tf.function(input_signature=[{k: tf.TensorSpec([None], v, name=k)
                                   for k, v in MAPPING.items()}])
    def mapping(self, inputs):
        return {k: tf.identity(v) for k, v in inputs.items()}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify_objects(self, serialized):
        parsed = _parse(serialized, image=([], tf.string), caption=([], tf.string))
        return {"classes": parsed["caption"][:, tf.newaxis],
                "scores": tf.cast(tf.strings.length(parsed["image"]), tf.float32)[:, tf.newaxis]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify_scores(self, serialized):
        """A classifier with scores and no classes."""
        return {"scores": _parse(serialized, x=([1], tf.float32))["x"]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress_with_context(self, serialized):
        parsed = _parse(serialized, x=([1], tf.float32), offset=([1], tf.float32))
        return {"outputs": parsed["x"] + parsed["offset"]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def sensor_readings(self, serialized):
        """The sum of the finite readings plus 10 per non-finite one."""
        x = _parse(serialized, sensor_readings=([4], tf.float32))["sensor_readings"]
        finite = tf.math.is_finite(x)
        return {"outputs": tf.reduce_sum(tf.where(finite, x, 0.0), axis=1)
                + 10.0 * tf.reduce_sum(tf.cast(~finite, tf.float32), axis=1)}

    def signatures(self):
        return {"serving_default": self.tag_signal_sensor, "upper": self.upper,
                "pairs": self.pairs, "echo_bytes": self.echo_bytes, "mapping": self.mapping,
                "classify_objects": self.classify_objects,
                "classify_scores": self.classify_scores,
                "regress_with_context": self.regress_with_context,
                "sensor_readings": self.sensor_readings}


DOC_METHODS = {"classify_objects": "tensorflow/serving/classify",
               "classify_scores": "tensorflow/serving/classify",
               "regress_with_context": "tensorflow/serving/regress",
               "sensor_readings": "tensorflow/serving/regress"}


def _set_method_names(version_dir: Path, methods: dict[str, str]) -> None:
    """tf.saved_model.save marks every signature predict; an estimator export marks its
    classify/regress ones with their method names, which TF Serving can check."""
    path = version_dir / "saved_model.pb"
    saved = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    for key, method in methods.items():
        saved.meta_graphs[0].signature_def[key].method_name = method
    path.write_bytes(saved.SerializeToString())


def _session_run(version_dir: Path, signature: str, feeds: dict) -> dict:
    """Run a signature of a TF1 SavedModel in-process by tensor name, as TF Serving does."""
    with tf.Graph().as_default(), v1.Session() as session:
        meta = v1.saved_model.loader.load(session, ["serve"], str(version_dir))
        definition = meta.signature_def[signature]
        return session.run({k: t.name for k, t in definition.outputs.items()},
                           {definition.inputs[k].name: v for k, v in feeds.items()})


def _example(**features) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        k: tf.train.Feature(float_list=tf.train.FloatList(value=v))
        for k, v in features.items()})).SerializeToString()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Every model of this module under one engine, and what the tests compare with."""
    base = tmp_path_factory.mktemp("tfs-examples")
    images, labels = examples.digits_28x28()
    floats = examples.mnist_floats(images)
    examples.save_mnist_tf1(base / "mnist" / "1", floats[:-MNIST_ROWS], labels[:-MNIST_ROWS],
                            steps=50)
    resnet = examples.tiny_resnet_like(IMAGE_SIZE)
    resnet.save(base / "resnet.keras")
    pipeline.export_model(sources.resolve(str(base / "resnet.keras"), progress=False),
                          base / "models", progress=False)
    examples.save_jpeg_model(resnet, base / "models" / "resnet_jpg" / "1")
    (base / "foo.txt").write_text("asset")
    half_plus_three(base / H3 / VERSION, base / "foo.txt")
    doc = DocExamples()
    save_module(doc, base / "doc_examples" / "1", doc.signatures())
    _set_method_names(base / "doc_examples" / "1", DOC_METHODS)
    paths = {"mnist": base / "mnist", "resnet": base / "models" / "resnet",
             "resnet_jpg": base / "models" / "resnet_jpg", H3: base / H3,
             "doc_examples": base / "doc_examples"}
    config = base / "models.config"
    config.write_text(models_config(paths, labels={H3: {"stable": 123}}))
    # A label in the config that starts the server needs this flag (TF Serving refuses a label
    # to a version that is not loaded yet, and at start-up none is).
    with serving(f"--model_config_file={config}",
                 "--allow_version_labels_for_unavailable_models=true") as server, \
            server.channel() as channel:
        yield SimpleNamespace(server=server, paths=paths, resnet=resnet,
                              stub=prediction_service_pb2_grpc.PredictionServiceStub(channel),
                              mnist_images=floats[-MNIST_ROWS:],
                              jpeg=examples.jpeg_bytes(IMAGE_SIZE))


def rest(served, request: str, body=None):
    """``(status, JSON)`` of ``"METHOD /path"`` on the shared engine."""
    return send_json(served.server, request, body)


def _client_values(tensor_proto) -> np.ndarray:
    """What the gRPC clients read: ``numpy.array(outputs[name].float_val)``, after checking
    that it is the whole float32 tensor (TF Serving answers in the typed field)."""
    assert tensor_proto.dtype == types_pb2.DT_FLOAT
    values = np.array(tensor_proto.float_val)
    np.testing.assert_array_equal(values, tf.make_ndarray(tensor_proto).reshape(-1))
    return values


# --- mnist_client.py ------------------------------------------------------------------------

def _mnist_request(image: np.ndarray) -> predict_pb2.PredictRequest:
    """Exactly mnist_client.do_inference's request for one ``[784]`` float32 image."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mnist"
    request.model_spec.signature_name = "predict_images"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(image, shape=[1, image.size]))
    return request


def test_mnist_client_requests(served):
    """mnist_client.py's concurrent Predict futures; it reads ``outputs['scores'].float_val``
    and takes the argmax."""
    futures = [served.stub.Predict.future(_mnist_request(image), DEADLINE_S)
               for image in served.mnist_images]
    expected = _session_run(served.paths["mnist"] / "1", "predict_images",
                            {"images": served.mnist_images})["scores"]
    for row, future in enumerate(futures):
        response = future.result()
        scores = response.outputs["scores"]
        assert tf.TensorShape(scores.tensor_shape).as_list() == [1, 10]
        got = _client_values(scores)
        assert np.argmax(got) == np.argmax(expected[row])
        np.testing.assert_allclose(got, expected[row], rtol=1e-5, atol=1e-7)
        assert (response.model_spec.name, response.model_spec.version.value,
                response.model_spec.signature_name) == ("mnist", 1, "predict_images")


def test_mnist_default_signature_classifies_examples(served):
    """mnist_saved_model.py's serving_default: classify over tf.Example feature ``x`` with
    classes from a string table (initialised by the SavedModel's main op), top-k order."""
    image = served.mnist_images[0]
    expected = _session_run(served.paths["mnist"] / "1", "serving_default",
                            {"inputs": [_example(x=image)]})
    status, got = rest(served, "POST /v1/models/mnist:classify",
                       {"examples": [{"x": image.tolist()}]})
    assert status == 200, got
    [pairs] = got["results"]
    assert [label for label, _ in pairs] == [c.decode() for c in expected["classes"][0]]
    np.testing.assert_allclose([score for _, score in pairs], expected["scores"][0], rtol=1e-5,
                               atol=1e-7)


# --- resnet_client.py / resnet_client_grpc.py -----------------------------------------------

def _resnet_in_process(served, images) -> np.ndarray:
    return served.resnet(tf.constant(images, tf.float32), training=False).numpy()


def _check_resnet(got: np.ndarray, expected: np.ndarray) -> None:
    """One row of 10 scores whose argmax (what the clients print) is the in-process one."""
    assert expected.shape == (1, 10)
    assert np.size(got) == 10
    assert np.argmax(got) == np.argmax(expected)
    np.testing.assert_allclose(np.reshape(got, (1, 10)), expected, rtol=1e-4, atol=1e-6)


def test_resnet_client_rest_sends_the_decoded_image(served):
    """resnet_client.py with ``MODEL_ACCEPT_JPG = False`` (as shipped): ``{"instances": ...}``
    of ``np.array(Image.open(jpeg)) / 255.0`` with a batch axis, float64 in JSON."""
    image = examples.client_floats(served.jpeg)
    body = json.dumps({"instances": image.tolist()})
    status, got = rest(served, "POST /v1/models/resnet:predict", body)
    assert status == 200, got
    assert list(got) == ["predictions"] and np.shape(got["predictions"]) == (1, 10)
    _check_resnet(np.array(got["predictions"]), _resnet_in_process(served, image))


def test_resnet_client_rest_sends_b64_jpeg(served):
    """resnet_client.py with ``MODEL_ACCEPT_JPG = True``: the JPEG itself, base64 in a
    ``{"b64": ...}`` instance, formatted by hand as the client does."""
    jpeg = base64.b64encode(served.jpeg).decode("utf-8")
    status, got = rest(served, "POST /v1/models/resnet_jpg:predict",
                       f'{{"instances" : [{{"b64": "{jpeg}"}}]}}')
    assert status == 200, got
    assert list(got) == ["predictions"] and np.shape(got["predictions"]) == (1, 10)
    expected = served.resnet(examples.decode_jpegs(tf.constant([served.jpeg]),
                                                   (IMAGE_SIZE, IMAGE_SIZE))).numpy()
    _check_resnet(np.array(got["predictions"]), expected)


def _resnet_grpc(served, model: str, data) -> predict_pb2.PredictResponse:
    """Exactly resnet_client_grpc.main's request and call."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_default"
    request.inputs["input_1"].CopyFrom(tf.make_tensor_proto(data))
    return served.stub.Predict(request, DEADLINE_S)


def test_resnet_client_grpc_sends_float32_image(served):
    """resnet_client_grpc.py as shipped: ``input_1`` float32 ``[1, H, W, 3]``; it reads
    ``outputs['activation_49'].float_val``."""
    image = examples.client_floats(served.jpeg).astype(np.float32)
    output = _resnet_grpc(served, "resnet", image).outputs["activation_49"]
    assert tf.TensorShape(output.tensor_shape).as_list() == [1, 10]
    _check_resnet(_client_values(output), _resnet_in_process(served, image))


def test_resnet_client_grpc_sends_jpeg_scalar(served):
    """resnet_client_grpc.py with ``MODEL_ACCEPT_JPG = True``: ``make_tensor_proto(bytes)`` is a
    scalar string; TF Serving feeds it by name whatever the placeholder's declared ``[?]``."""
    sent = tf.make_tensor_proto(served.jpeg)
    assert (sent.dtype, len(sent.tensor_shape.dim)) == (types_pb2.DT_STRING, 0)
    output = _resnet_grpc(served, "resnet_jpg", served.jpeg).outputs["activation_49"]
    assert tf.TensorShape(output.tensor_shape).as_list() == [1, 10]
    expected = served.resnet(examples.decode_jpegs(tf.constant(served.jpeg),
                                                   (IMAGE_SIZE, IMAGE_SIZE))).numpy()
    _check_resnet(_client_values(output), expected)


# --- api_rest.md ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", [f"/v1/models/{H3}", f"/v1/models/{H3}/versions/123",
                                  f"/v1/models/{H3}/labels/stable"])
def test_model_status(served, path):
    """``GET .../models/${MODEL_NAME}[/versions/${VERSION}|/labels/${LABEL}]``: the document's
    answer for half_plus_three."""
    assert rest(served, f"GET {path}") == (200, H3_STATUS)


@pytest.mark.parametrize("path", [f"/v1/models/{H3}", f"/v1/models/{H3}/versions/123",
                                  f"/v1/models/{H3}/labels/stable"])
def test_model_metadata(served, path):
    """``GET ...[/versions/${VERSION}|/labels/${LABEL}]/metadata``: GetModelMetadataResponse as
    JSON, the resolved version in model_spec and the whole SignatureDefMap."""
    status, got = rest(served, f"GET {path}/metadata")
    assert status == 200, got
    assert got == expected_metadata(served.paths[H3] / VERSION, H3)
    assert got["model_spec"]["version"] == "123"


HALF_PLUS_THREE = [  # (id, "<model path>:<verb>", body, expected)
    # "Make REST API calls to ModelServer", verbatim.
    ("doc_predict", f"{H3}:predict", '{"instances": [1.0,2.0,5.0]}',
     {"predictions": [3.5, 4.0, 5.5]}),
    ("doc_regress", f"{H3}:regress", '{"signature_name": "tensorflow/serving/regress", '
     '"examples": [{"x": 1.0}, {"x": 2.0}]}', {"results": [3.5, 4.0]}),
    ("predict_version", f"{H3}/versions/123:predict", {"instances": [1.0]},
     {"predictions": [3.5]}),
    ("predict_label", f"{H3}/labels/stable:predict", {"instances": [1.0]},
     {"predictions": [3.5]}),
    ("regress_label", f"{H3}/labels/stable:regress",
     {"signature_name": "tensorflow/serving/regress", "examples": [{"x": 5.0}]},
     {"results": [5.5]}),
    # "inputs": <value>|<(nested)list>: one unnamed input in columnar form.
    ("columnar_list", f"{H3}:predict", {"inputs": [1.0, 2.0, 5.0]},
     {"outputs": [3.5, 4.0, 5.5]}),
    ("columnar_scalar", f"{H3}:predict", {"inputs": 1.0}, {"outputs": 3.5}),
    ("named_instances", f"{H3}:predict", {"instances": [{"x": 1.0}, {"x": 2.0}]},
     {"predictions": [3.5, 4.0]}),
    # JSON mapping: NaN, Infinity, -Infinity and exponent notation for DT_FLOAT.
    ("nan_infinity", f"{H3}:predict", '{"instances": [NaN, Infinity, -Infinity]}',
     {"predictions": ["NaN", "Infinity", "-Infinity"]}),
    ("exponent", f"{H3}:predict", '{"instances": [1e1, 2.5E-1, -4e0]}',
     {"predictions": [8.0, 3.125, 1.0]}),
]


@pytest.mark.parametrize(("path", "body", "expected"), [c[1:] for c in HALF_PLUS_THREE],
                         ids=[c[0] for c in HALF_PLUS_THREE])
def test_half_plus_three(served, path, body, expected):
    assert rest(served, f"POST /v1/models/{path}", body) == (200, expected)


def test_unknown_model_is_404_with_error_object(served):
    """The document's last call, verbatim: ``{ "error": <message> }`` with 404."""
    assert rest(served, "POST /v1/models/half:predict", '{"instances": [1.0,5.0]}') == (
        404, {"error": "Servable not found for request: Latest(half)"})


ROWS = [{"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},
        {"tag": "bar", "signal": [3, 4, 1, 2, 5], "sensor": [[4, 5], [6, 8]]}]
ROW_ANSWERS = [{"tag": "foo", "signal_sum": 15, "sensor_trace": 5.0},
               {"tag": "bar", "signal_sum": 15, "sensor_trace": 12.0}]
IMAGE_EXAMPLES = {"signature_name": "classify_objects", "examples": [
    {"image": {"b64": "aW1hZ2UgYnl0ZXM="}, "caption": "seaside"},
    {"image": {"b64": "YXdlc29tZSBpbWFnZSBieXRlcw=="}, "caption": "mountains"}]}
JPEG_MAGIC = base64.b64encode(b"\xff\xd8\xff\xe0").decode()

DOC_CASES = [  # (id, verb, body, expected); POST /v1/models/doc_examples:<verb>
    # "When there is only one named input, specify the value of instances to be the value of
    # the input": three scalar tensors, and two tensors each of [1, 2] shape.
    ("row_scalars", "predict", {"signature_name": "upper", "instances": ["foo", "bar", "baz"]},
     {"predictions": ["FOO", "BAR", "BAZ"]}),
    ("row_tensors", "predict", {"signature_name": "pairs", "instances": [[[1, 2]], [[3, 4]]]},
     {"predictions": [[[10.0, 20.0]], [[30.0, 40.0]]]}),
    # Multiple named inputs: one object per instance; multiple outputs: a list of objects.
    ("row_named", "predict", {"instances": ROWS}, {"predictions": ROW_ANSWERS}),
    # The same in columnar form: an object of inputs in, an object of outputs out.
    ("columnar_named", "predict",
     {"inputs": {k: [row[k] for row in ROWS] for k in ("tag", "signal", "sensor")}},
     {"outputs": {k: [a[k] for a in ROW_ANSWERS] for k in ROW_ANSWERS[0]}}),
    # Columnar inputs need not share the 0-th dimension.
    ("columnar_own_batch_sizes", "predict",
     {"signature_name": "mapping", "inputs": {
         "bool": [True, False], "string": ["Hello World!"], "int8": [1, -10, 0],
         "uint8": [1, 0, 10], "int16": [1, -10, 0], "int32": [1, -10, 0], "uint32": [1, 0, 10],
         "int64": [1, -10, 0], "uint64": [1, 0, 10], "float": [1.1, -10.0, 0, 1435774380],
         "double": [1.1, -10.0, 0]}},
     {"outputs": {
         "bool": [True, False], "string": ["Hello World!"], "int8": [1, -10, 0],
         "uint8": [1, 0, 10], "int16": [1, -10, 0], "int32": [1, -10, 0], "uint32": [1, 0, 10],
         "int64": [1, -10, 0], "uint64": [1, 0, 10],
         # "Floating Point Precision": 1435774380 becomes the float32 1435774336, which
         # TF Serving writes with 9 significant digits (WriteDecimal<float>): 1.43577434e+09.
         "float": [1.1, -10.0, 0.0, 1.43577434e9], "double": [1.1, -10.0, 0.0]}}),
    ("mapping_non_finite", "predict",
     '{"signature_name": "mapping", "inputs": {"bool": [], "string": [], "int8": [], '
     '"uint8": [], "int16": [], "int32": [], "uint32": [], "int64": [], "uint64": [], '
     '"float": [NaN, Infinity, -Infinity], "double": [NaN, Infinity, -Infinity]}}',
     {"outputs": {"bool": [], "string": [], "int8": [], "uint8": [], "int16": [], "int32": [],
                  "uint32": [], "int64": [], "uint64": [],
                  "float": ["NaN", "Infinity", "-Infinity"],
                  "double": ["NaN", "Infinity", "-Infinity"]}}),
    # "Encoding binary values": {"b64": ...} in, and out for an output named *_bytes.
    ("b64_in_and_out", "predict",
     {"signature_name": "echo_bytes", "instances": [{"b64": "aW1hZ2UgYnl0ZXM="},
                                                    {"b64": JPEG_MAGIC}]},
     {"predictions": [{"b64": "aW1hZ2UgYnl0ZXM="}, {"b64": JPEG_MAGIC}]}),
    ("b64_columnar", "predict", {"signature_name": "echo_bytes", "inputs": {"data": [
        {"b64": JPEG_MAGIC}]}}, {"outputs": [{"b64": JPEG_MAGIC}]}),
    # The document's classification request with `image` (binary) and `caption` features.
    ("classify_b64_features", "classify", IMAGE_EXAMPLES,
     {"results": [[["seaside", 11.0]], [["mountains", 19.0]]]}),
    # A model without labels for its scores: each label is "".
    ("classify_scores_only", "classify",
     {"signature_name": "classify_scores", "examples": [{"x": 1.0}, {"x": 2.5}]},
     {"results": [[["", 1.0]], [["", 2.5]]]}),
    # "context": features shared by all examples.
    ("regress_context", "regress", {"signature_name": "regress_with_context",
                                    "context": {"offset": 10.0},
                                    "examples": [{"x": 1.0}, {"x": 2.0}]},
     {"results": [11.0, 12.0]}),
    # "JSON conformance": NaN and Infinity among a feature's numbers (the document's body with
    # its two typos fixed: "examples", "NaN").
    ("regress_non_finite_features", "regress",
     '{"signature_name": "sensor_readings", "examples": [{"sensor_readings": '
     '[ 1.0, -3.14, NaN, Infinity ]}]}', {"results": [pytest.approx(17.86, rel=1e-6)]}),
]


@pytest.mark.parametrize(("verb", "body", "expected"), [c[1:] for c in DOC_CASES],
                         ids=[c[0] for c in DOC_CASES])
def test_api_rest_examples(served, verb, body, expected):
    assert rest(served, f"POST /v1/models/doc_examples:{verb}", body) == (200, expected)


DOC_TYPOS = [  # The document's bodies verbatim, where a JSON typo makes them invalid.
    ("row_named_extra_bracket", "predict",
     '{\n "instances": [\n   {\n     "tag": "foo",\n     "signal": [1, 2, 3, 4, 5],\n'
     '     "sensor": [[1, 2], [3, 4]]\n   },\n   {\n     "tag": "bar",\n'
     '     "signal": [3, 4, 1, 2, 5]],\n     "sensor": [[4, 5], [6, 8]]\n   }\n ]\n}',
     "JSON Parse error: Missing a comma or '}' after an object member."),
    ("conformance_nan_spelled_nan", "regress",
     '{\n  "example": [\n    {\n      "sensor_readings": [ 1.0, -3.14, Nan, Infinity ]\n'
     '    }\n  ]\n}', "JSON Parse error: Invalid value."),
]


@pytest.mark.parametrize(("verb", "body", "message"), [c[1:] for c in DOC_TYPOS],
                         ids=[c[0] for c in DOC_TYPOS])
def test_api_rest_typos_are_parse_errors(served, verb, body, message):
    """TF Serving parses with rapidjson (NaN/Infinity allowed, nothing else): 400 and the
    parse error, whose offset is not checked here."""
    status, got = rest(served, f"POST /v1/models/doc_examples:{verb}", body)
    assert status == 400
    assert list(got) == ["error"] and got["error"].startswith(message), got
