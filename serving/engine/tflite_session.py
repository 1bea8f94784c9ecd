"""TFLite models as TensorFlow Serving's ``TfLiteSession`` serves them (``tflite_session.cc``).

* **Signatures** come from the model's ``signature_defs_metadata`` entry (a flexbuffer map from
  signature key to a serialized ``SignatureDef``, written by TFLite's ``signature_def_util``);
  a model without one gets a synthesised ``serving_default`` whose inputs and outputs are the
  interpreter's input and output tensors, keyed by tensor name without its ``:0`` suffix. The
  converter's own flatbuffer signatures are not read: TensorFlow Serving does not read them.
* **Runs** are by tensor name, like a TensorFlow session: each fed tensor resizes its input to
  the fed shape, and the named output tensors come back whole.
* :func:`embed_signature_defs` writes the metadata entry, so an exported variant serves under
  TensorFlow Serving with the names of its SavedModel.
"""

from __future__ import annotations

import queue
import warnings
from collections.abc import Mapping, Sequence

import flatbuffers
import numpy as np
import tensorflow as tf
from flatbuffers import flexbuffers
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.lite.python import schema_py_generated as schema

from tf_serving_platform.serving.engine.signature import DEFAULT_SIGNATURE, PREDICT_METHOD
from tf_serving_platform.serving.errors import invalid_argument

SIGNATURE_DEFS_METADATA = "signature_defs_metadata"
FILE_IDENTIFIER = b"TFL3"
SignatureDefs = dict[str, meta_graph_pb2.SignatureDef]

warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")


def _legacy_name(name: str) -> str:
    """Early TFLite converters dropped the ``:0`` suffix (``TfToTfLiteLegacyTensorName``)."""
    return name.split(":", 1)[0]


def _resolve(name: str, known: Mapping[str, int]) -> str | None:
    """``name`` or its legacy form, whichever the interpreter knows (``FixTfLiteTensorName``)."""
    if name in known:
        return name
    legacy = _legacy_name(name)
    return legacy if legacy in known else None


def _tensor_info(detail: dict, shape: str = "shape") -> meta_graph_pb2.TensorInfo:
    """A TensorInfo from interpreter tensor details: current dims (``shape``), as TensorFlow
    Serving reports them, or dims with -1 for variable sizes (``shape_signature``)."""
    info = meta_graph_pb2.TensorInfo(name=detail["name"],
                                     dtype=tf.as_dtype(detail["dtype"]).as_datatype_enum)
    for size in detail[shape]:
        info.tensor_shape.dim.add(size=int(size))
    return info


def embedded_signature_defs(model: bytes) -> SignatureDefs:
    """The SignatureDefs in the model's ``signature_defs_metadata``; ``{}`` when it has none."""
    root = schema.Model.GetRootAs(model, 0)
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if entry.Name() == SIGNATURE_DEFS_METADATA.encode():
            data = root.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
            table = flexbuffers.GetRoot(data).AsMap
            return {key.AsKey: meta_graph_pb2.SignatureDef.FromString(
                        table[key.AsKey].AsStringBytes) for key in table.Keys}
    return {}


def embed_signature_defs(model: bytes, defs: Mapping[str, meta_graph_pb2.SignatureDef]) -> bytes:
    """``model`` with ``defs`` written as its ``signature_defs_metadata`` entry."""
    builder = flexbuffers.Builder()
    with builder.Map():
        for key in sorted(defs):
            builder.Key(key)
            # A flexbuffer *string* holding the proto's bytes, as TFLite's C++ writer stores it;
            # the Python builder's String() only takes text.
            builder._WriteBlob(defs[key].SerializeToString(), append_zero=True,  # noqa: SLF001
                               type_=flexbuffers.Type.STRING)
    table = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model, 0))
    table.metadata = [m for m in table.metadata or []
                      if m.name.decode() != SIGNATURE_DEFS_METADATA]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(bytes(builder.Finish()), np.uint8)
    table.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = SIGNATURE_DEFS_METADATA.encode(), len(table.buffers) - 1
    table.metadata.append(entry)
    out = flatbuffers.Builder(len(model) + 1024)
    out.Finish(table.Pack(out), file_identifier=FILE_IDENTIFIER)
    return bytes(out.Output())


def flatbuffer_signature_defs(interpreter: tf.lite.Interpreter) -> SignatureDefs:
    """The converter's flatbuffer signatures as SignatureDefs over tensor names (for export)."""
    defs = {}
    for key in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(key)
        sig = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
        for target, details in ((sig.inputs, runner.get_input_details()),
                                (sig.outputs, runner.get_output_details())):
            for alias, detail in details.items():
                target[alias].CopyFrom(_tensor_info(detail, "shape_signature"))
        defs[key] = sig
    return defs


class TfLiteSession:
    """A pool of interpreters of one model, run by tensor name; one request per interpreter."""

    def __init__(self, model: bytes, pool_size: int = 2):
        self._pool: queue.Queue[tf.lite.Interpreter] = queue.Queue()
        for _ in range(max(1, pool_size)):
            interpreter = tf.lite.Interpreter(model_content=model)
            interpreter.allocate_tensors()
            self._pool.put(interpreter)
        first = self._pool.queue[0]
        inputs, outputs = first.get_input_details(), first.get_output_details()
        self._inputs = {d["name"]: d["index"] for d in inputs}
        self._outputs = {d["name"]: d["index"] for d in outputs}
        self.signature_defs = self._signature_defs(model, inputs, outputs)

    def _signature_defs(self, model: bytes, inputs: list[dict], outputs: list[dict]
                        ) -> SignatureDefs:
        defs = embedded_signature_defs(model)
        for key, sig in defs.items():
            for kind, infos, known in (("input", sig.inputs, self._inputs),
                                       ("output", sig.outputs, self._outputs)):
                for alias, info in infos.items():
                    name = _resolve(info.name, known)
                    if name is None:
                        raise ValueError(f"Signature {kind} {alias} of {key} references an "
                                         f"unknown tensor: Unknown tensor '{info.name}'.")
                    info.name = name
        if defs:
            return defs
        sig = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
        for target, details in ((sig.inputs, inputs), (sig.outputs, outputs)):
            for detail in details:
                target[_legacy_name(detail["name"])].CopyFrom(_tensor_info(detail))
        return {DEFAULT_SIGNATURE: sig}

    def run(self, feeds: Mapping[str, np.ndarray], fetches: Sequence[str]) -> list[np.ndarray]:
        """Feed tensors by name (resizing inputs to the fed shapes), return the named outputs."""
        indices = []
        for name in feeds:
            found = _resolve(name, self._inputs)
            if found is None:
                raise invalid_argument(f"Missing input TFLite tensor: {name}: Unknown tensor "
                                       f"'{name}'.")
            indices.append(self._inputs[found])
        outputs = []
        for name in fetches:
            found = _resolve(name, self._outputs)
            if found is None:
                raise invalid_argument(f"Unknown tensor '{name}'.")
            outputs.append(self._outputs[found])
        interpreter = self._pool.get()
        try:
            return self._invoke(interpreter, indices, list(feeds.values()), outputs)
        finally:
            self._pool.put(interpreter)

    @staticmethod
    def _invoke(interpreter: tf.lite.Interpreter, indices: list[int], values: list[np.ndarray],
                outputs: list[int]) -> list[np.ndarray]:
        shapes = {d["index"]: tuple(d["shape"]) for d in interpreter.get_input_details()}
        resized = False
        for index, value in zip(indices, values, strict=True):
            if shapes[index] != np.shape(value):
                interpreter.resize_tensor_input(index, list(np.shape(value)), strict=False)
                resized = True
        if resized:
            interpreter.allocate_tensors()
        for index, value in zip(indices, values, strict=True):
            interpreter.set_tensor(index, value)
        interpreter.invoke()
        return [np.array(interpreter.get_tensor(index)) for index in outputs]
