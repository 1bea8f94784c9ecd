"""The generated TensorFlow Serving test models (tests/tfs_models.py) hold TF Serving's values.

The expected signatures below are literals read off TensorFlow Serving's checked-in copies
(``tensorflow_serving/servables/tensorflow/testdata``, commit 9d981c5c): signature keys, tensor
names, dtypes, declared shapes (``ANY``: unknown rank; ``NO_SHAPE``: the TensorInfo records no
shape at all), method names and ``defaults``. The models TF Serving's integration tests save
themselves have no checked-in copy; their literals are what TensorFlow writes for the same code.
This test reads the generated files only.
"""

from __future__ import annotations

import json

import pytest
from flatbuffers import flexbuffers
from google.protobuf import text_format
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow_serving.config import model_server_config_pb2

from tests import tfs_models as tfs_models_lib
from tf_serving_platform.servectl.commands.inspect_cmd import describe_model
from tf_serving_platform.serving.engine.config_protos import BatchingParameters, MonitoringConfig

ANY, NO_SHAPE = "unknown rank", "no shape recorded"
F, S, F_REF = "DT_FLOAT", "DT_STRING", "DT_FLOAT_REF"
PREDICT, CLASSIFY, REGRESS = ("tensorflow/serving/predict", "tensorflow/serving/classify",
                              "tensorflow/serving/regress")
ROW = (-1, 1)

# signature key: (method_name, {input alias: (tensor name, dtype, shape)}, {output alias: ...}
#                 [, {default alias: (dtype, shape, values)}])
HALF_PLUS_TWO_CPU = {
    "serving_default": (PREDICT, {"x": ("x:0", F, ROW)}, {"y": ("y:0", F, ROW)}),
    "classify_x_to_y": (CLASSIFY, {"inputs": ("tf_example:0", S, ANY)},
                        {"scores": ("y:0", F, ROW)}),
    "regress_x_to_y": (REGRESS, {"inputs": ("tf_example:0", S, ANY)},
                       {"outputs": ("y:0", F, ROW)}),
    "regress_x_to_y2": (REGRESS, {"inputs": ("tf_example:0", S, ANY)},
                        {"outputs": ("y2:0", F, ROW)}),
    "regress_x2_to_y3": (REGRESS, {"inputs": ("x2:0", F, ROW)}, {"outputs": ("y3:0", F, ROW)}),
}
HALF_PLUS_TWO_2_VERSIONS = {
    **HALF_PLUS_TWO_CPU,
    "classify_x2_to_y3": (CLASSIFY, {"inputs": ("x2:0", F, ROW)}, {"scores": ("y3:0", F, ROW)}),
}
HALF_PLUS_THREE = {
    "serving_default": (PREDICT, {"x": ("x:0", F, NO_SHAPE)}, {"y": ("y:0", F, NO_SHAPE)}),
    "tensorflow/serving/regress": (REGRESS, {"inputs": ("tf_example:0", F, NO_SHAPE)},
                                   {"outputs": ("Identity:0", F, NO_SHAPE)}),
}
INIT_OP = {"__saved_model_init_op": ("", {}, {"__saved_model_init_op": ("NoOp", "DT_INVALID",
                                                                        ANY)})}
HALF_PLUS_TWO_TF2 = {
    **INIT_OP,
    "classify_x2_to_y3": (PREDICT, {"inputs": ("classify_x2_to_y3_inputs:0", F, (1,))},
                          {"scores": ("StatefulPartitionedCall:0", F, (1,))}),
    "classify_x_to_y": (PREDICT, {"inputs": ("classify_x_to_y_inputs:0", S, (-1,))},
                        {"scores": ("StatefulPartitionedCall_1:0", F, ROW)}),
    "regress_x2_to_y3": (PREDICT, {"inputs": ("regress_x2_to_y3_inputs:0", F, (1,))},
                         {"outputs": ("StatefulPartitionedCall_2:0", F, (1,))}),
    "regress_x_to_y": (PREDICT, {"inputs": ("regress_x_to_y_inputs:0", S, (-1,))},
                       {"outputs": ("StatefulPartitionedCall_3:0", F, ROW)}),
    "regress_x_to_y2": (PREDICT, {"inputs": ("regress_x_to_y2_inputs:0", S, (-1,))},
                        {"outputs": ("StatefulPartitionedCall_4:0", F, ROW)}),
    "serving_default": (PREDICT, {"x": ("serving_default_x:0", F, (1,))},
                        {"y": ("StatefulPartitionedCall_5:0", F, (1,))},
                        {"x": (F, (1,), [0.0])}),
}
COUNTER = {
    "get_counter": (PREDICT, {}, {"output": ("counter:0", F_REF, ())}),
    "incr_counter": (PREDICT, {}, {"output": ("incr_counter_op/AssignAdd:0", F_REF, ())}),
    "incr_counter_by": (PREDICT, {"delta": ("delta:0", F, ANY)},
                        {"output": ("incr_counter_by_op/AssignAdd:0", F_REF, ())}),
    "reset_counter": (PREDICT, {}, {"output": ("reset_counter_op/Assign:0", F_REF, ())}),
}
KERAS_X_TO_Y = {"serving_default": (PREDICT, {"x": ("serving_default_x:0", F, ROW)},
                                    {"y": ("PartitionedCall:0", F, ROW)})}
SAVED_MODELS = {  # model: (version directories, signatures)
    "saved_model_half_plus_two_cpu": (["00000123"], HALF_PLUS_TWO_CPU),
    "saved_model_half_plus_two_2_versions": (["00000123", "00000124"], HALF_PLUS_TWO_2_VERSIONS),
    "saved_model_half_plus_three": (["00000123"], HALF_PLUS_THREE),
    "saved_model_half_plus_two_tf2_cpu": (["00000123"], HALF_PLUS_TWO_TF2),
    "saved_model_counter": (["00000123"], COUNTER),
    # Saved by the integration tests themselves (no checked-in copy):
    "tf_saved_model_save": (["00000123"], {**INIT_OP, "serving_default": (
        PREDICT, {"x": ("serving_default_x:0", F, ANY)},
        {"y": ("StatefulPartitionedCall:0", F, ANY)})}),
    "tf_saved_model_save_multiple_signatures": (["00000123"], {
        **INIT_OP,
        "serving_default": (PREDICT, {"x": ("serving_default_x:0", F, ANY)},
                            {"y": ("PartitionedCall_1:0", F, ())}),
        "custom_signature_key": (PREDICT, {"x": ("custom_signature_key_x:0", F, ANY)},
                                 {"y": ("PartitionedCall:0", F, ())})}),
    "keras_sequential_saved_model_save": (["00000123"], {**INIT_OP, **KERAS_X_TO_Y}),
    "distrat_keras_sequential_saved_model_save": (["00000123"], {**INIT_OP, "serving_default": (
        PREDICT, {"x": ("serving_default_x:0", F, ROW)},
        {"y": ("StatefulPartitionedCall:0", F, ROW)})}),
}
WITH_ASSET = ["saved_model_half_plus_two_cpu", "saved_model_half_plus_two_2_versions",
              "saved_model_half_plus_three", "saved_model_half_plus_two_tf2_cpu"]

# model: ({name: (type, shape, shape_signature)} of the subgraph's inputs, ... outputs,
#         custom op codes, SignatureDefs in the "signature_defs_metadata" entry or None)
TFLITE_MODELS = {
    "saved_model_half_plus_two_tflite": (
        {"x": ("FLOAT32", [1, 1], None)}, {"y": ("FLOAT32", [1, 1], None)}, [], None),
    "saved_model_half_plus_two_tflite_with_sigdef": (
        {"tflite_input": ("FLOAT32", [1, 1], None)}, {"y": ("FLOAT32", [1, 1], None)}, [],
        {"serving_default": (PREDICT, {"x": ("tflite_input:0", F, (1, 1))},
                             {"y": ("y:0", F, (1, 1))})}),
    "parse_example_tflite": (
        {"input": ("STRING", [1], [-1])},
        {"ParseExample/ParseExampleV2": ("FLOAT32", [1, 1], [-1, 1]),
         "ParseExample/ParseExampleV2:1": ("STRING", [1, 1], [-1, 1])},
        ["ParseExampleV2"],
        {"serving_default": (PREDICT, {"input": ("input:0", S, (-1,))}, {
            "ParseExample/ParseExampleV2": ("ParseExample/ParseExampleV2:0", F, ROW),
            "ParseExample/ParseExampleV2:1": ("ParseExample/ParseExampleV2:1", S, ROW)})}),
}


def _shape(info: meta_graph_pb2.TensorInfo):
    if not info.HasField("tensor_shape"):
        return NO_SHAPE
    if info.tensor_shape.unknown_rank:
        assert not info.tensor_shape.dim
        return ANY
    return tuple(d.size for d in info.tensor_shape.dim)


def _described(signature: meta_graph_pb2.SignatureDef) -> tuple:
    """A SignatureDef in the literal form above."""
    import tensorflow as tf

    def infos(tensors):
        return {alias: (t.name, types_pb2.DataType.Name(t.dtype), _shape(t))
                for alias, t in tensors.items()}
    entry = (signature.method_name, infos(signature.inputs), infos(signature.outputs))
    if signature.defaults:
        entry += ({alias: (types_pb2.DataType.Name(t.dtype),
                           tuple(d.size for d in t.tensor_shape.dim), tf.make_ndarray(t).tolist())
                   for alias, t in signature.defaults.items()},)
    return entry


def _asset_files(meta_graph: meta_graph_pb2.MetaGraphDef) -> list[str]:
    """The asset file names a MetaGraphDef lists (TF2: asset_file_def; TF1: either that or the
    ``saved_model_assets`` collection older builders wrote)."""
    names = [a.filename for a in meta_graph.asset_file_def]
    if "saved_model_assets" in meta_graph.collection_def:
        for packed in meta_graph.collection_def["saved_model_assets"].any_list.value:
            asset = meta_graph_pb2.AssetFileDef()
            packed.Unpack(asset)
            names.append(asset.filename)
    return names


@pytest.mark.parametrize("model", SAVED_MODELS)
def test_saved_model_signatures(tfs_models, model):
    versions, expected = SAVED_MODELS[model]
    base = tfs_models[model]
    assert sorted(p.name for p in base.iterdir()) == versions
    for version in versions:
        meta_graph = tfs_models_lib.meta_graph(base / version)
        assert list(meta_graph.meta_info_def.tags) == ["serve"]
        got = {key: _described(value) for key, value in meta_graph.signature_def.items()}
        assert got == expected
        if model in WITH_ASSET:
            assert (base / version / "assets" / "foo.txt").read_text() == "asset-file-contents"
            assert _asset_files(meta_graph) == ["foo.txt"]
        else:
            assert not (base / version / "assets").is_dir() or \
                not any((base / version / "assets").iterdir())


def _name(enum_class, value: int) -> str:
    return next(k for k, v in vars(enum_class).items() if v == value and not k.startswith("_"))


def _metadata_signatures(data: bytes) -> dict:
    """The ``signature_defs_metadata`` flexbuffer: a map of key -> serialized SignatureDef kept
    as a flexbuffer string (what ``tflite::SetSignatureDefMap`` writes)."""
    root = flexbuffers.GetRoot(data).AsMap
    signatures = {}
    for key, value in zip(root.Keys, root.Values, strict=True):
        assert value.IsString, key.AsKey
        raw = bytes(flexbuffers.String(value._Indirect(), value._byte_width).Bytes)
        signatures[key.AsKey] = _described(meta_graph_pb2.SignatureDef.FromString(raw))
    return signatures


@pytest.mark.parametrize("model", TFLITE_MODELS)
def test_tflite_models(tfs_models, model):
    inputs, outputs, custom_ops, signatures = TFLITE_MODELS[model]
    base = tfs_models[model]
    assert [p.name for p in base.iterdir()] == ["00000123"]
    assert [p.name for p in (base / "00000123").iterdir()] == ["model.tflite"]
    buffer = (base / "00000123" / "model.tflite").read_bytes()
    flat = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buffer, 0))
    (graph,) = flat.subgraphs

    def tensors(indices):
        def listed(a):
            return None if a is None else [int(d) for d in a]
        return {graph.tensors[i].name.decode(): (
            _name(schema.TensorType, graph.tensors[i].type), listed(graph.tensors[i].shape),
            listed(graph.tensors[i].shapeSignature)) for i in indices}
    assert (tensors(graph.inputs), tensors(graph.outputs)) == (inputs, outputs)
    assert [c.customCode.decode() for c in flat.operatorCodes if c.customCode] == custom_ops
    assert not flat.signatureDefs  # TF Serving reads SignatureDefs from the metadata only
    entries = {m.name.decode(): bytes(flat.buffers[m.buffer].data) for m in flat.metadata or []}
    got = entries.get("signature_defs_metadata")
    assert (None if got is None else _metadata_signatures(got)) == signatures


def test_bad_half_plus_two_is_a_bare_tf1_checkpoint(tfs_models):
    import tensorflow as tf

    version = tfs_models["bad_half_plus_two"] / "00000123"
    assert sorted(p.name for p in version.iterdir()) == ["checkpoint", "export", "export.meta"]
    meta_graph = meta_graph_pb2.MetaGraphDef.FromString((version / "export.meta").read_bytes())
    assert not meta_graph.signature_def
    reader = tf.compat.v1.train.NewCheckpointReader(str(version / "export"))
    assert {name: float(reader.get_tensor(name))
            for name in reader.get_variable_to_shape_map()} == {"Variable": 0.5,
                                                               "Variable_1": 2.0}
    state = tf.train.get_checkpoint_state(str(version))
    assert state.model_checkpoint_path == str(version / "export")


def test_config_files(tfs_models):
    config = text_format.Parse(tfs_models["good_model_config"].read_text(),
                               model_server_config_pb2.ModelServerConfig())
    assert [(c.name, c.base_path, c.model_platform) for c in config.model_config_list.config] == [
        ("half_plus_two", str(tfs_models["saved_model_half_plus_two_cpu"]), "tensorflow"),
        ("half_plus_three", str(tfs_models["saved_model_half_plus_three"]), "tensorflow")]
    bad = tfs_models["bad_model_config"].read_text()
    assert bad == "improperly formatted file"
    with pytest.raises(text_format.ParseError):
        text_format.Parse(bad, model_server_config_pb2.ModelServerConfig())
    batching = text_format.Parse(tfs_models["batching_config"].read_text(),
                                 BatchingParameters())
    assert (batching.max_batch_size.value, batching.batch_timeout_micros.value,
            batching.max_enqueued_batches.value, batching.num_batch_threads.value) == (
        128, 0, 1000000, 8)
    monitoring = text_format.Parse(tfs_models["monitoring_config"].read_text(),
                                   MonitoringConfig())
    assert (monitoring.prometheus_config.enable, monitoring.prometheus_config.path) == (
        True, "/monitoring/prometheus/metrics")


def _json_signature(entry: tuple) -> dict:
    """A literal signature in the proto3 JSON form of TF Serving's expected-metadata files."""
    def info(name, dtype, shape):
        dims = [] if shape == ANY else [{"size": str(d), "name": ""} for d in shape]
        return {"dtype": dtype, "name": name,
                "tensor_shape": {"dim": dims, "unknown_rank": shape == ANY}}
    method, inputs, outputs = entry[:3]
    return {"inputs": {k: info(*v) for k, v in inputs.items()},
            "outputs": {k: info(*v) for k, v in outputs.items()},
            "method_name": method, "defaults": {}}


@pytest.mark.parametrize(("key", "name", "signatures"), [
    ("half_plus_two_model_metadata", "default", HALF_PLUS_TWO_CPU),
    ("saved_model_half_plus_two_2_versions_metadata", "saved_model_half_plus_two_2_versions",
     HALF_PLUS_TWO_2_VERSIONS),
])
def test_expected_metadata_files(tfs_models, key, name, signatures):
    assert json.loads(tfs_models[key].read_text()) == {
        "model_spec": {"name": name, "signature_name": "", "version": "123"},
        "metadata": {"signature_def": {"signature_def": {
            k: _json_signature(v) for k, v in signatures.items()}}}}


# saved_model_half_plus_two_cpu's signatures as `servectl inspect` shows them; each version of
# saved_model_half_plus_two_2_versions shows them after one more, classify_x2_to_y3.
HALF_PLUS_TWO_INSPECTED = """\
    signature 'classify_x_to_y' (tensorflow/serving/classify)
      in   inputs: string ? (tf_example:0)
      out  scores: float32 [?, 1] (y:0)
    signature 'regress_x2_to_y3' (tensorflow/serving/regress)
      in   inputs: float32 [?, 1] (x2:0)
      out  outputs: float32 [?, 1] (y3:0)
    signature 'regress_x_to_y' (tensorflow/serving/regress)
      in   inputs: string ? (tf_example:0)
      out  outputs: float32 [?, 1] (y:0)
    signature 'regress_x_to_y2' (tensorflow/serving/regress)
      in   inputs: string ? (tf_example:0)
      out  outputs: float32 [?, 1] (y2:0)
    signature 'serving_default' (tensorflow/serving/predict)
      in   x: float32 [?, 1] (x:0)
      out  y: float32 [?, 1] (y:0)
"""
CLASSIFY_X2_TO_Y3_INSPECTED = """\
    signature 'classify_x2_to_y3' (tensorflow/serving/classify)
      in   inputs: float32 [?, 1] (x2:0)
      out  scores: float32 [?, 1] (y3:0)
"""

# What `servectl inspect` shows for TensorFlow Serving's own copies of these models (its testdata at
# commit 9d981c5c), captured once: the generated models must show exactly the same.
INSPECTED = {
    'saved_model_half_plus_two_cpu': (
        "saved_model_half_plus_two_cpu: versions 00000123\n"
        "  version 00000123: SavedModel\n" + HALF_PLUS_TWO_INSPECTED),
    'saved_model_half_plus_two_2_versions': (
        "saved_model_half_plus_two_2_versions: versions 00000123, 00000124\n"
        + "".join(f"  version {version}: SavedModel\n"
                  + CLASSIFY_X2_TO_Y3_INSPECTED + HALF_PLUS_TWO_INSPECTED
                  for version in ("00000123", "00000124"))),
    'saved_model_half_plus_three': """\
saved_model_half_plus_three: versions 00000123
  version 00000123: SavedModel
    signature 'serving_default' (tensorflow/serving/predict)
      in   x: float32 ? (x:0)
      out  y: float32 ? (y:0)
    signature 'tensorflow/serving/regress' (tensorflow/serving/regress)
      in   inputs: float32 ? (tf_example:0)
      out  outputs: float32 ? (Identity:0)
""",
    'saved_model_half_plus_two_tf2_cpu': """\
saved_model_half_plus_two_tf2_cpu: versions 00000123
  version 00000123: SavedModel
    signature 'classify_x2_to_y3' (tensorflow/serving/predict)
      in   inputs: float32 [1] (classify_x2_to_y3_inputs:0)
      out  scores: float32 [1] (StatefulPartitionedCall:0)
    signature 'classify_x_to_y' (tensorflow/serving/predict)
      in   inputs: string [?] (classify_x_to_y_inputs:0)
      out  scores: float32 [?, 1] (StatefulPartitionedCall_1:0)
    signature 'regress_x2_to_y3' (tensorflow/serving/predict)
      in   inputs: float32 [1] (regress_x2_to_y3_inputs:0)
      out  outputs: float32 [1] (StatefulPartitionedCall_2:0)
    signature 'regress_x_to_y' (tensorflow/serving/predict)
      in   inputs: string [?] (regress_x_to_y_inputs:0)
      out  outputs: float32 [?, 1] (StatefulPartitionedCall_3:0)
    signature 'regress_x_to_y2' (tensorflow/serving/predict)
      in   inputs: string [?] (regress_x_to_y2_inputs:0)
      out  outputs: float32 [?, 1] (StatefulPartitionedCall_4:0)
    signature 'serving_default' (tensorflow/serving/predict)
      in   x: float32 [1] (serving_default_x:0)
      out  y: float32 [1] (StatefulPartitionedCall_5:0)
""",
    'saved_model_counter': """\
saved_model_counter: versions 00000123
  version 00000123: SavedModel
    signature 'get_counter' (tensorflow/serving/predict)
      out  output: float32_ref [] (counter:0)
    signature 'incr_counter' (tensorflow/serving/predict)
      out  output: float32_ref [] (incr_counter_op/AssignAdd:0)
    signature 'incr_counter_by' (tensorflow/serving/predict)
      in   delta: float32 ? (delta:0)
      out  output: float32_ref [] (incr_counter_by_op/AssignAdd:0)
    signature 'reset_counter' (tensorflow/serving/predict)
      out  output: float32_ref [] (reset_counter_op/Assign:0)
""",
    'saved_model_half_plus_two_tflite': """\
saved_model_half_plus_two_tflite: versions 00000123
  version 00000123: TFLite
    signature 'serving_default' (tensorflow/serving/predict)
      in   x: float32 [1, 1] (x)
      out  y: float32 [1, 1] (y)
""",
    'saved_model_half_plus_two_tflite_with_sigdef': """\
saved_model_half_plus_two_tflite_with_sigdef: versions 00000123
  version 00000123: TFLite
    signature 'serving_default' (tensorflow/serving/predict)
      in   x: float32 [1, 1] (tflite_input)
      out  y: float32 [1, 1] (y)
""",
    'bad_half_plus_two': """\
bad_half_plus_two: versions 00000123
  version 00000123: incomplete (no saved_model.pb or model.tflite)
""",
}


@pytest.mark.parametrize("model", sorted(INSPECTED))
def test_inspect_shows_what_it_shows_for_tensorflow_servings_copies(tfs_models, model):
    assert "\n".join(describe_model(tfs_models[model])) + "\n" == INSPECTED[model]
