"""Readable summaries of what a version directory serves, read straight from its files.

``saved_model.pb`` is parsed as a protobuf: no graph is loaded, so it is fast and works for any
SavedModel, TF1-era ones included. ``model.tflite`` files are described from the SignatureDefs
the engine serves them with (:class:`serving.engine.tflite_session.TfLiteSession`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from tf_serving_platform.serving.engine.signature import declared_shape
from tf_serving_platform.serving.engine.tflite_session import TfLiteSession

METADATA_FILE = Path("assets.extra") / "export_metadata.json"


@dataclass(frozen=True)
class TensorSummary:
    name: str
    dtype: str
    shape: tuple[int | None, ...] | None  # None: unknown rank
    tensor: str = ""
    """The graph tensor the alias feeds or fetches (what TensorFlow Serving runs by)."""

    def __str__(self) -> str:
        dims = "?" if self.shape is None else "[" + ", ".join(
            "?" if d is None else str(d) for d in self.shape) + "]"
        return f"{self.name}: {self.dtype} {dims}" + (f" ({self.tensor})" if self.tensor else "")


@dataclass(frozen=True)
class SignatureSummary:
    key: str
    method: str
    inputs: tuple[TensorSummary, ...]
    outputs: tuple[TensorSummary, ...]

    def as_dict(self) -> dict:
        return asdict(self)


def _tensor(name: str, info: meta_graph_pb2.TensorInfo) -> TensorSummary:
    dtype = tf.as_dtype(info.dtype).name if info.dtype else "invalid"
    return TensorSummary(name, dtype, declared_shape(info), info.name)


def signature_summaries(defs: Mapping[str, meta_graph_pb2.SignatureDef]
                        ) -> list[SignatureSummary]:
    """Summaries sorted by key, internal signatures (``__saved_model_init_op``) left out."""
    return [SignatureSummary(key, sig.method_name,
                             tuple(_tensor(n, t) for n, t in sorted(sig.inputs.items())),
                             tuple(_tensor(n, t) for n, t in sorted(sig.outputs.items())))
            for key, sig in sorted(defs.items()) if not key.startswith("__")]


def saved_model_signatures(version_dir: Path) -> list[SignatureSummary]:
    """Signatures of the ``serve`` graph."""
    saved = saved_model_pb2.SavedModel.FromString((Path(version_dir) / "saved_model.pb")
                                                  .read_bytes())
    graph = next(g for g in saved.meta_graphs if "serve" in g.meta_info_def.tags)
    return signature_summaries(graph.signature_def)


def tflite_signatures(model_file: Path) -> list[SignatureSummary]:
    """Signatures of a ``model.tflite``, as TensorFlow Serving and the engine name them."""
    return signature_summaries(TfLiteSession(Path(model_file).read_bytes(), 1).signature_defs)


def read_metadata(version_dir: Path) -> dict:
    """The export metadata of a version, or ``{}`` for a version this tool did not write."""
    path = Path(version_dir) / METADATA_FILE
    return json.loads(path.read_text()) if path.exists() else {}
