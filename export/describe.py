"""Readable summaries of what a version directory serves, read straight from its files.

``saved_model.pb`` is parsed as a protobuf: no graph is loaded, so it is fast and works for any
SavedModel, TF1-era ones included. ``model.tflite`` files are described by
:meth:`export.tflite.TfliteRunner.signatures` in the same format.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

METADATA_FILE = Path("assets.extra") / "export_metadata.json"
INTERNAL_SIGNATURES = ("__saved_model_init_op",)


@dataclass(frozen=True)
class TensorSummary:
    name: str
    dtype: str
    shape: tuple[int | None, ...] | None  # None: unknown rank

    def __str__(self) -> str:
        dims = "?" if self.shape is None else "[" + ", ".join(
            "?" if d is None else str(d) for d in self.shape) + "]"
        return f"{self.name}: {self.dtype} {dims}"


@dataclass(frozen=True)
class SignatureSummary:
    key: str
    method: str
    inputs: tuple[TensorSummary, ...]
    outputs: tuple[TensorSummary, ...]

    def as_dict(self) -> dict:
        return asdict(self)


def _tensor(name: str, info) -> TensorSummary:
    dtype = tf.as_dtype(info.dtype).name if info.dtype else "invalid"
    shape = None if info.tensor_shape.unknown_rank else tuple(
        None if d.size < 0 else d.size for d in info.tensor_shape.dim)
    return TensorSummary(name, dtype, shape)


def saved_model_signatures(version_dir: Path) -> list[SignatureSummary]:
    """Signatures of the ``serve`` graph, sorted by key, internal ones left out."""
    saved = saved_model_pb2.SavedModel.FromString((Path(version_dir) / "saved_model.pb")
                                                  .read_bytes())
    graph = next(g for g in saved.meta_graphs if "serve" in g.meta_info_def.tags)
    return [SignatureSummary(key, sig.method_name,
                             tuple(_tensor(n, t) for n, t in sorted(sig.inputs.items())),
                             tuple(_tensor(n, t) for n, t in sorted(sig.outputs.items())))
            for key, sig in sorted(graph.signature_def.items())
            if key not in INTERNAL_SIGNATURES]


def read_metadata(version_dir: Path) -> dict:
    """The export metadata of a version, or ``{}`` for a version this tool did not write."""
    path = Path(version_dir) / METADATA_FILE
    return json.loads(path.read_text()) if path.exists() else {}
