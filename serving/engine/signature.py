"""Signature metadata of a loaded version: names, dtypes and shapes of inputs and outputs.

Built once at load time from the SavedModel's ``SignatureDef`` protos (or synthesized for TFLite),
and used by the service to resolve requests and decode their tensors without touching
TensorFlow. Declared shapes are information only: TensorFlow Serving does not enforce them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tensorflow.core.protobuf import meta_graph_pb2

from tf_serving_platform.serving.codec import TFDType, resolve

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"


@dataclass(frozen=True)
class TensorInfo:
    """One input or output: dtype and shape (None dims are unknown; None shape is unknown rank)."""

    dtype: TFDType
    shape: tuple[int | None, ...] | None
    name: str = ""
    """The graph tensor it feeds or fetches, e.g. ``serving_default_x:0``."""


@dataclass(frozen=True)
class SignatureInfo:
    key: str
    method_name: str
    inputs: Mapping[str, TensorInfo]
    outputs: Mapping[str, TensorInfo]

    def input_dtypes(self) -> dict[str, str]:
        return {name: info.dtype.name for name, info in self.inputs.items()}


REF_DTYPE_OFFSET = 100
"""``DT_FLOAT_REF`` is ``DT_FLOAT + 100``: TF1 graphs record a variable's output as a ref type;
fetching it yields a value of the base type."""


def declared_shape(proto: meta_graph_pb2.TensorInfo) -> tuple[int | None, ...] | None:
    """The shape a TensorInfo declares; one that records no shape at all has unknown rank."""
    if not proto.HasField("tensor_shape") or proto.tensor_shape.unknown_rank:
        return None
    return tuple(None if d.size < 0 else d.size for d in proto.tensor_shape.dim)


def _tensor_info(proto: meta_graph_pb2.TensorInfo) -> TensorInfo:
    dtype = proto.dtype - REF_DTYPE_OFFSET if proto.dtype > REF_DTYPE_OFFSET else proto.dtype
    return TensorInfo(resolve(dtype), declared_shape(proto), proto.name)


def from_signature_defs(defs: Mapping[str, meta_graph_pb2.SignatureDef]
                        ) -> dict[str, SignatureInfo]:
    """SignatureInfo for every signature of a SavedModel, internal ones left out."""
    return {key: SignatureInfo(key, sig.method_name,
                               {a: _tensor_info(t) for a, t in sig.inputs.items()},
                               {a: _tensor_info(t) for a, t in sig.outputs.items()})
            for key, sig in defs.items() if not key.startswith("__")}
