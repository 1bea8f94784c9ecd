"""TensorFlow Serving's own test models, generated here so that no test needs a download.

TensorFlow Serving's integration tests (``tensorflow_serving/model_servers/
tensorflow_model_server_test.py``, ``http_rest_api_handler_test.cc``) serve the models of
``tensorflow_serving/servables/tensorflow/testdata``. This module builds equivalents of them the
way TF Serving's generators do (``saved_model_half_plus_two.py``, ``export_counter.py``,
``export_bad_half_plus_two.py``, ``parse_example_tflite.py``) and the models the integration
tests save themselves, with the same signature keys, tensor names, dtypes, declared shapes
(unknown rank and "no shape recorded" included), method names, assets and version directories;
``tests/conformance/test_tfs_models.py`` holds them to the values of TF Serving's checked-in copies.

``build(base)`` runs the generators in a fresh Python process: the distributed Keras model needs
two virtual CPUs, which TensorFlow only allows before its runtime starts, and the TF1 graphs then
leave no global state behind in the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

VERSION = "00000123"
"""The version directory of every model (TF Serving's testdata name it so)."""

SAVED_MODELS = ("saved_model_half_plus_two_cpu", "saved_model_half_plus_two_2_versions",
                "saved_model_half_plus_three", "saved_model_half_plus_two_tf2_cpu",
                "saved_model_counter", "bad_half_plus_two", "tf_saved_model_save",
                "tf_saved_model_save_multiple_signatures", "keras_sequential_saved_model_save",
                "distrat_keras_sequential_saved_model_save")
TFLITE_MODELS = ("saved_model_half_plus_two_tflite", "saved_model_half_plus_two_tflite_with_sigdef",
                 "parse_example_tflite")
FILES = {"good_model_config": "good_model_config.conf", "bad_model_config": "bad_model_config.txt",
         "batching_config": "batching_config.txt", "monitoring_config": "monitoring_config.txt",
         "half_plus_two_model_metadata": "half_plus_two_model_metadata.json",
         "saved_model_half_plus_two_2_versions_metadata":
             "saved_model_half_plus_two_2_versions_metadata.json"}

PREDICT, CLASSIFY, REGRESS = ("tensorflow/serving/predict", "tensorflow/serving/classify",
                              "tensorflow/serving/regress")
ASSET_CONTENTS = "asset-file-contents"
TFLITE_SIGNATURES_METADATA = "signature_defs_metadata"
"""The TFLite metadata entry TF Serving reads SignatureDefs from (lite/tools/signature)."""


def paths(base: Path) -> dict[str, Path]:
    """Where ``build(base)`` puts each model (its base path) and each config file."""
    return {**{name: base / name for name in SAVED_MODELS + TFLITE_MODELS},
            **{key: base / name for key, name in FILES.items()}}


def build(base: Path) -> dict[str, Path]:
    """Generate every model and config file under ``base`` (in a child process)."""
    base.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "tests.tfs_models", str(base)], env=env,
                          cwd=Path(__file__).resolve().parents[1], capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"generating TF Serving's test models failed:\n{done.stderr}")
    return paths(base)


# ---- the generators (run in the child process) ----

def _tf():
    import tensorflow as tf

    return tf


def _float_vars(**values: float) -> list:
    """TF1 reference variables (VariableV2 ops), as TF Serving's TF1 generators make them."""
    v1 = _tf().compat.v1
    return [v1.Variable(value, name=name, use_resource=False) for name, value in values.items()]


def _sig(inputs: dict, outputs: dict, method: str):
    build_info = _tf().compat.v1.saved_model.utils.build_tensor_info
    return _tf().compat.v1.saved_model.signature_def_utils.build_signature_def(
        {k: build_info(t) for k, t in inputs.items()},
        {k: build_info(t) for k, t in outputs.items()}, method)


def _asset_source(base: Path) -> Path:
    """The original ``foo.txt`` the SavedModels copy into their ``assets/``."""
    path = base / ".asset-source" / "foo.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ASSET_CONTENTS)
    return path


def half_plus_two_tf1(export_dir: Path, asset: Path, *, classify_x2: bool = False,
                      tflite_input: str | None = None) -> None:
    """``y = 0.5x + 2``, ``y2 = 0.5x + 3``, ``y3 = 0.5x2 + 3`` as a TF1 graph.

    ``x`` and ``x2`` are parsed from serialized ``tf.Example`` messages fed as ``tf_example`` (a
    placeholder of unknown rank, so its TensorInfo records no rank), and ``x`` is also fed
    directly by ``serving_default``. ``tflite_input`` instead converts the graph to
    ``export_dir/model.tflite`` with ``x`` pinned to ``[1, 1]`` under that tensor name.
    """
    tf = _tf()
    v1 = tf.compat.v1
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as session:
        a, b, c = _float_vars(a=0.5, b=2.0, c=3.0)
        serialized = v1.placeholder(tf.string, name="tf_example")
        features = v1.io.parse_example(serialized, {
            "x": v1.io.FixedLenFeature([1], tf.float32),
            "x2": v1.io.FixedLenFeature([1], tf.float32, default_value=[0.0])})
        for parsed in features.values():  # what TF1's ParseExample inferred from [1] features
            parsed.set_shape([None, 1])
        if tflite_input:  # the TFLite converter needs static shapes
            x = tf.ensure_shape(features["x"], (1, 1), name=tflite_input)
        else:
            x = tf.identity(features["x"], name="x")
        y = tf.identity(a * x + b, name="y")
        y2 = tf.identity(a * x + c, name="y2")
        x2 = tf.identity(features["x2"], name="x2")
        a2, c2 = _float_vars(a2=0.5, c2=3.0)
        y3 = tf.identity(a2 * x2 + c2, name="y3")

        # The asset: its path goes in ASSET_FILEPATHS, a variable gets its name at load time.
        v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, tf.constant(str(asset)))
        filename = v1.Variable(asset.name, name="filename_tensor", trainable=False,
                               collections=[], use_resource=False)
        assign_filename = filename.assign(asset.name)
        session.run(v1.global_variables_initializer())

        if tflite_input:
            converter = v1.lite.TFLiteConverter.from_session(session, [x], [y])
            export_dir.mkdir(parents=True, exist_ok=True)
            (export_dir / "model.tflite").write_bytes(_without_signature_table(
                converter.convert()))
            return
        signatures = {"serving_default": _sig({"x": x}, {"y": y}, PREDICT),
                      "regress_x_to_y": _sig({"inputs": serialized}, {"outputs": y}, REGRESS),
                      "regress_x_to_y2": _sig({"inputs": serialized}, {"outputs": y2}, REGRESS),
                      "regress_x2_to_y3": _sig({"inputs": x2}, {"outputs": y3}, REGRESS),
                      "classify_x_to_y": _sig({"inputs": serialized}, {"scores": y}, CLASSIFY)}
        if classify_x2:
            signatures["classify_x2_to_y3"] = _sig({"inputs": x2}, {"scores": y3}, CLASSIFY)
        builder = v1.saved_model.Builder(str(export_dir))
        builder.add_meta_graph_and_variables(
            session, ["serve"], signature_def_map=signatures,
            assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
            main_op=tf.group(assign_filename))
        builder.save()


def half_plus_three(export_dir: Path, asset: Path) -> None:
    """``y = 0.5x + 3``, written with TensorInfos that record no shape at all (as TF 1.0 did).

    Its ``tensorflow/serving/regress`` signature declares ``tf_example:0`` as DT_FLOAT, exactly
    as TF Serving's checked-in copy does.
    """
    tf = _tf()
    v1 = tf.compat.v1
    from tensorflow.core.protobuf import meta_graph_pb2

    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as session:
        a, b, c = _float_vars(a=0.5, b=3.0, c=3.0)
        serialized = v1.placeholder(tf.string, name="tf_example")
        x = tf.identity(v1.io.parse_example(
            serialized, {"x": v1.io.FixedLenFeature([1], tf.float32)})["x"], name="x")
        y = tf.add(a * x, b, name="y")
        x2 = v1.placeholder(tf.float32, name="x2")
        tf.add(a * x2, c, name="y2")
        regress_out = tf.identity(y)
        v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, tf.constant(str(asset)))
        filename = v1.Variable(asset.name, name="filename_tensor", trainable=False,
                               collections=[], use_resource=False)
        assign_filename = filename.assign(asset.name)
        session.run(v1.global_variables_initializer())

        def info(name: str, dtype) -> meta_graph_pb2.TensorInfo:
            return meta_graph_pb2.TensorInfo(name=name, dtype=dtype.as_datatype_enum)

        signatures = {
            "serving_default": meta_graph_pb2.SignatureDef(
                inputs={"x": info("x:0", tf.float32)}, outputs={"y": info("y:0", tf.float32)},
                method_name=PREDICT),
            "tensorflow/serving/regress": meta_graph_pb2.SignatureDef(
                inputs={"inputs": info("tf_example:0", tf.float32)},
                outputs={"outputs": info(regress_out.name, tf.float32)}, method_name=REGRESS)}
        builder = v1.saved_model.Builder(str(export_dir))
        builder.add_meta_graph_and_variables(
            session, ["serve"], signature_def_map=signatures,
            assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
            main_op=tf.group(assign_filename))
        builder.save()


def half_plus_two_tf2(export_dir: Path, asset: Path) -> None:
    """The native TF2 variant: ``tf.saved_model.save`` of a module with six signatures.

    Every signature keeps tf.function's method name (predict), the example-parsing ones take a
    string vector named ``inputs``, and ``serving_default`` has a default value for ``x``.
    """
    tf = _tf()

    def parse_x(serialized):
        return tf.io.parse_example(serialized, {
            "x": tf.io.FixedLenFeature([1], tf.float32),
            "x2": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0])})["x"]

    strings = tf.TensorSpec([None], tf.string, name="inputs")
    one_float = tf.TensorSpec([1], tf.float32, name="inputs")

    class HalfPlusTwo(tf.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = (tf.Variable(v, name=n) for n, v in
                                      (("a", 0.5), ("b", 2.0), ("c", 3.0)))
            self.asset = tf.saved_model.Asset(str(asset))

        @tf.function(input_signature=[tf.TensorSpec([1], tf.float32)])
        def predict(self, x=tf.constant([0.0])):  # noqa: B008 (the signature's default value)
            return {"y": self.a * x + self.b}

        @tf.function(input_signature=[strings])
        def regress_xy(self, serialized):
            return {"outputs": self.a * parse_x(serialized) + self.b}

        @tf.function(input_signature=[strings])
        def regress_xy2(self, serialized):
            return {"outputs": self.a * parse_x(serialized) + self.c}

        @tf.function(input_signature=[one_float])
        def regress_x2y3(self, x2):
            return {"outputs": self.a * x2 + self.c}

        @tf.function(input_signature=[strings])
        def classify_xy(self, serialized):
            return {"scores": self.a * parse_x(serialized) + self.b}

        @tf.function(input_signature=[one_float])
        def classify_x2y3(self, x2):
            return {"scores": self.a * x2 + self.c}

    module = HalfPlusTwo()
    tf.saved_model.save(module, str(export_dir), signatures={
        "serving_default": module.predict, "regress_x_to_y": module.regress_xy,
        "regress_x_to_y2": module.regress_xy2, "regress_x2_to_y3": module.regress_x2y3,
        "classify_x_to_y": module.classify_xy, "classify_x2_to_y3": module.classify_x2y3})


def counter(export_dir: Path) -> None:
    """A stateful float counter: four Predict signatures, three of them without inputs.

    The outputs are reference tensors (DT_FLOAT_REF) of the TF1 variable and of its assign ops.
    """
    tf = _tf()
    v1 = tf.compat.v1
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as session:
        (count,) = _float_vars(counter=0.0)
        with tf.name_scope("incr_counter_op"):
            incr = count.assign_add(1.0)
        delta = v1.placeholder(tf.float32, name="delta")
        with tf.name_scope("incr_counter_by_op"):
            incr_by = count.assign_add(delta)
        with tf.name_scope("reset_counter_op"):
            reset = count.assign(0.0)
        session.run(v1.global_variables_initializer())
        signatures = {"get_counter": _sig({}, {"output": count}, PREDICT),
                      "incr_counter": _sig({}, {"output": incr}, PREDICT),
                      "incr_counter_by": _sig({"delta": delta}, {"output": incr_by}, PREDICT),
                      "reset_counter": _sig({}, {"output": reset}, PREDICT)}
        builder = v1.saved_model.Builder(str(export_dir))
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
        builder.save()


def bad_half_plus_two(export_dir: Path) -> None:
    """``y = 0.5x + 2`` as a bare TF1 checkpoint (``export``, ``export.meta``, ``checkpoint``)
    with no SavedModel and no signatures: a model no server can load."""
    tf = _tf()
    v1 = tf.compat.v1
    export_dir.mkdir(parents=True, exist_ok=True)
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as session:
        a, b = (v1.Variable(v, use_resource=False) for v in (0.5, 2.0))
        x = v1.placeholder(tf.float32)
        tf.add(a * x, b)
        session.run(v1.global_variables_initializer())
        saver = v1.train.Saver(write_version=v1.train.SaverDef.V1)
        saver.export_meta_graph(filename=str(export_dir / "export.meta"))
        saver.save(session, str(export_dir / "export"), write_meta_graph=False)


def tf_saved_model_save(export_dir: Path) -> None:
    """``test_tf_saved_model_save``: ``y = 3 * 2 * x`` over an input of unknown rank."""
    tf = _tf()
    root = tf.train.Checkpoint()
    root.v1, root.v2 = tf.Variable(3.0), tf.Variable(2.0)
    root.f = tf.function(lambda x: {"y": root.v1 * root.v2 * x})
    tf.saved_model.save(root, str(export_dir),
                        root.f.get_concrete_function(tf.TensorSpec(None, tf.float32)))


def tf_saved_model_save_multiple_signatures(export_dir: Path) -> None:
    """``test_tf_saved_model_save_multiple_signatures``: constants 1 (default) and 2 (custom)."""
    tf = _tf()
    spec = [tf.TensorSpec(None, tf.float32)]
    root = tf.train.Checkpoint()
    root.f = tf.function(lambda x: {"y": 1.0}, input_signature=spec)
    root.g = tf.function(lambda x: {"y": 2.0}, input_signature=spec)
    tf.saved_model.save(root, str(export_dir),
                        signatures={"serving_default": root.f, "custom_signature_key": root.g})


def keras_sequential(export_dir: Path, distributed: bool = False) -> None:
    """``test_sequential_keras_saved_model_save`` (``y = x``) and, with ``distributed``, the
    ``tf.distribute.MirroredStrategy`` variant over two CPUs (``y = Dense(ones)(x)``)."""
    tf = _tf()
    from contextlib import nullcontext

    import tf_keras as keras  # TF Serving's tf.keras: Keras 2 names the signature x -> y

    scope = (tf.distribute.MirroredStrategy(devices=("/cpu:0", "/cpu:1")).scope()
             if distributed else nullcontext())
    with scope:
        model = keras.models.Sequential()
        model.add(keras.layers.Input(dtype="float32", shape=(1,), name="x"))
        if distributed:
            model.add(keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="zeros"))
        model.add(keras.layers.Lambda(lambda x: x, name="y"))
    tf.saved_model.save(model, str(export_dir))


# ---- TFLite ----

def _tflite_model(buffer: bytes):
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils.convert_bytearray_to_object(bytearray(buffer))


def _tflite_bytes(model) -> bytes:
    from tensorflow.lite.tools import flatbuffer_utils

    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _without_signature_table(buffer: bytes) -> bytes:
    """The converter's flatbuffer without the SignatureDef table newer converters add: TF
    Serving's copies (from older converters) have none."""
    model = _tflite_model(buffer)
    if not model.signatureDefs:
        return buffer
    model.signatureDefs = None
    return _tflite_bytes(model)


def set_tflite_signature_defs(buffer: bytes, signature_defs: dict) -> bytes:
    """Embed ``{key: SignatureDef}`` in the TFLite metadata entry TF Serving reads.

    The entry's buffer is a flexbuffer map from each key to a string holding the serialized
    SignatureDef; an existing entry is replaced.
    """
    from flatbuffers import flexbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    fbb = flexbuffers.Builder()
    with fbb.Map():
        for key in sorted(signature_defs):
            fbb.Key(key)
            # Builder.String() would UTF-8-encode a str; the value is raw proto bytes.
            fbb._WriteBlob(signature_defs[key].SerializeToString(), append_zero=True,
                           type_=flexbuffers.Type.STRING)
    data = fbb.Finish()

    model = _tflite_model(buffer)
    entry = next((m for m in model.metadata or []
                  if m.name.decode() == TFLITE_SIGNATURES_METADATA), None)
    if entry is None:
        entry = schema.MetadataT()
        entry.name = TFLITE_SIGNATURES_METADATA
        entry.buffer = len(model.buffers)
        model.buffers.append(schema.BufferT())
        model.metadata = [*(model.metadata or []), entry]
    model.buffers[entry.buffer].data = list(data)
    return _tflite_bytes(model)


def half_plus_two_tflite(export_dir: Path, asset: Path, with_signature_def: bool) -> None:
    """``model.tflite`` of half_plus_two: without SignatureDefs (input tensor ``x``: TF Serving
    synthesises ``serving_default`` from the tensor names) or with ``serving_default`` embedded
    (input tensor ``tflite_input`` behind the alias ``x``)."""
    tf = _tf()
    from tensorflow.core.protobuf import meta_graph_pb2

    half_plus_two_tf1(export_dir, asset,
                      tflite_input="tflite_input" if with_signature_def else "x")
    if not with_signature_def:
        return
    path = export_dir / "model.tflite"

    def info(name: str) -> meta_graph_pb2.TensorInfo:
        shape = tf.TensorShape([1, 1]).as_proto()
        return meta_graph_pb2.TensorInfo(name=name, dtype=tf.float32.as_datatype_enum,
                                         tensor_shape=shape)

    signature = meta_graph_pb2.SignatureDef(inputs={"x": info("tflite_input:0")},
                                            outputs={"y": info("y:0")}, method_name=PREDICT)
    path.write_bytes(set_tflite_signature_defs(path.read_bytes(),
                                               {"serving_default": signature}))


def parse_example_tflite(export_dir: Path) -> None:
    """A TFLite model of ParseExample (the ``ParseExampleV2`` custom op TF Serving registers):
    serialized ``tf.Example`` messages ``input`` -> float ``x`` and string ``y`` (defaults 0 and
    "missing"), with its ``serving_default`` SignatureDef embedded."""
    tf = _tf()
    v1 = tf.compat.v1
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as session:
        serialized = v1.placeholder(tf.string, [None], name="input")
        features = v1.io.parse_example(serialized, {
            "x": v1.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
            "y": v1.io.FixedLenFeature([1], tf.string, default_value=["missing"])})
        converter = v1.lite.TFLiteConverter.from_session(session, [serialized],
                                                         [features["x"], features["y"]])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.allow_custom_ops = True
        buffer = _without_signature_table(converter.convert())
        signature = _sig({"input": serialized}, {"ParseExample/ParseExampleV2": features["x"],
                                                 "ParseExample/ParseExampleV2:1": features["y"]},
                         PREDICT)
    export_dir.mkdir(parents=True, exist_ok=True)
    (export_dir / "model.tflite").write_bytes(
        set_tflite_signature_defs(buffer, {"serving_default": signature}))


# ---- config files and expected metadata ----

GOOD_MODEL_CONFIG = """model_config_list: {
  config: {
    name: "half_plus_two",
    base_path: "${TEST_HALF_PLUS_TWO_DIR}",
    model_platform: "tensorflow"
  },
  config: {
    name: "half_plus_three",
    base_path: "${TEST_HALF_PLUS_THREE_DIR}",
    model_platform: "tensorflow"
  }
}
"""
BAD_MODEL_CONFIG = "improperly formatted file"
BATCHING_CONFIG = """max_batch_size { value: 128 }
batch_timeout_micros { value: 0 }
max_enqueued_batches { value: 1000000 }
num_batch_threads { value: 8 }
"""
MONITORING_CONFIG = """prometheus_config: {
  enable: true,
  path: "/monitoring/prometheus/metrics"
}
"""


def meta_graph(version_dir: Path):
    """The single MetaGraphDef of the SavedModel in ``version_dir``."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((version_dir / "saved_model.pb").read_bytes())
    (graph,) = saved.meta_graphs
    return graph


def expected_metadata(version_dir: Path, model_name: str) -> dict:
    """The REST GetModelMetadata answer for ``version_dir``'s SignatureDefs, as TF Serving's
    expected-metadata JSON files spell it (proto3 JSON, original field names, defaults
    printed); ``tests/conformance/test_tfs_models.py`` pins those SignatureDefs to literals."""
    from google.protobuf import json_format

    defs = {key: json_format.MessageToDict(value, preserving_proto_field_name=True,
                                           always_print_fields_with_no_presence=True)
            for key, value in meta_graph(version_dir).signature_def.items()}
    return {"model_spec": {"name": model_name, "signature_name": "",
                           "version": str(int(version_dir.name))},
            "metadata": {"signature_def": {"signature_def": defs}}}


def write_config_files(base: Path) -> None:
    where = paths(base)
    good = GOOD_MODEL_CONFIG.replace("${TEST_HALF_PLUS_TWO_DIR}",
                                     str(where["saved_model_half_plus_two_cpu"]))
    good = good.replace("${TEST_HALF_PLUS_THREE_DIR}", str(where["saved_model_half_plus_three"]))
    where["good_model_config"].write_text(good)
    where["bad_model_config"].write_text(BAD_MODEL_CONFIG)
    where["batching_config"].write_text(BATCHING_CONFIG)
    where["monitoring_config"].write_text(MONITORING_CONFIG)
    for key, model, name in (
            ("half_plus_two_model_metadata", "saved_model_half_plus_two_cpu", "default"),
            ("saved_model_half_plus_two_2_versions_metadata",
             "saved_model_half_plus_two_2_versions", "saved_model_half_plus_two_2_versions")):
        metadata = expected_metadata(where[model] / VERSION, name)
        where[key].write_text(json.dumps(metadata, indent=1, sort_keys=True) + "\n")


def generate(base: Path) -> None:
    """Every generator, in this process (``build`` runs this in a child)."""
    tf = _tf()
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    where = paths(base)
    asset = _asset_source(base)
    half_plus_two_tf1(where["saved_model_half_plus_two_cpu"] / VERSION, asset)
    for version in (VERSION, "00000124"):
        half_plus_two_tf1(where["saved_model_half_plus_two_2_versions"] / version, asset,
                          classify_x2=True)
    half_plus_three(where["saved_model_half_plus_three"] / VERSION, asset)
    half_plus_two_tf2(where["saved_model_half_plus_two_tf2_cpu"] / VERSION, asset)
    counter(where["saved_model_counter"] / VERSION)
    bad_half_plus_two(where["bad_half_plus_two"] / VERSION)
    half_plus_two_tflite(where["saved_model_half_plus_two_tflite"] / VERSION, asset, False)
    half_plus_two_tflite(where["saved_model_half_plus_two_tflite_with_sigdef"] / VERSION, asset,
                         True)
    parse_example_tflite(where["parse_example_tflite"] / VERSION)
    tf_saved_model_save(where["tf_saved_model_save"] / VERSION)
    tf_saved_model_save_multiple_signatures(
        where["tf_saved_model_save_multiple_signatures"] / VERSION)
    keras_sequential(where["keras_sequential_saved_model_save"] / VERSION)
    keras_sequential(where["distrat_keras_sequential_saved_model_save"] / VERSION,
                     distributed=True)
    write_config_files(base)


if __name__ == "__main__":
    generate(Path(sys.argv[1]))
