"""What the clients return besides tensors: model status, metadata, classification results.

Both wires are read through one parser each. The REST API answers protobuf JSON with
snake_case names; the gRPC client turns its response protos into the same dicts with
``json_format.MessageToDict(preserving_proto_field_name=True)``, so a field is read in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from tf_serving_platform.serving.client.errors import ServingClientError
from tf_serving_platform.serving.codec.dtypes import resolve

__all__ = [
    "ClassifyResult",
    "ModelListing",
    "ModelMetadata",
    "ModelVersionStatus",
    "SignatureInfo",
    "TensorSpec",
    "classify_result",
    "metadata_from_json",
    "models_from_json",
    "status_from_json",
]


@dataclass(frozen=True, slots=True)
class ModelVersionStatus:
    """One version's state, as ``GetModelStatus`` reports it.

    Attributes:
        version: the version number.
        state: ``START``, ``LOADING``, ``AVAILABLE``, ``UNLOADING`` or ``END``.
        error_code: ``OK``, or the canonical code name of a failed load.
        error_message: "" when ``error_code`` is ``OK``.
    """

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


@dataclass(frozen=True, slots=True)
class ModelListing:
    """One model of the server's model list (``GET /v1/models``, the embedded engine's).

    Attributes:
        name: the model name.
        versions: its versions, highest first, as ``status`` returns them.
        labels: ``{label: version}``.
    """

    name: str
    versions: list[ModelVersionStatus]
    labels: dict[str, int]


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output of a signature.

    Attributes:
        dtype: TensorFlow's enum name, e.g. ``DT_FLOAT``.
        shape: dimensions with None for unknown sizes; None when the rank is unknown.
    """

    dtype: str
    shape: tuple[int | None, ...] | None

    @property
    def numpy_dtype(self) -> np.dtype:
        """The numpy dtype the clients return for this tensor (object for strings)."""
        return resolve(self.dtype).numpy


@dataclass(frozen=True, slots=True)
class SignatureInfo:
    """A ``SignatureDef``: its method and its tensors by alias."""

    method_name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    """``GetModelMetadata``: the version that answered and its signatures by key."""

    model: str
    version: int
    signatures: dict[str, SignatureInfo]


@dataclass(frozen=True, slots=True)
class ClassifyResult:
    """Classify results, one row per example.

    Attributes:
        labels: str array ``[examples, classes]`` ("" where the signature has no ``classes``).
        scores: float32 array ``[examples, classes]``.
    """

    labels: np.ndarray
    scores: np.ndarray


def _malformed(what: str, model: str) -> ServingClientError:
    return ServingClientError(grpc.StatusCode.DATA_LOSS, f"Malformed {what} in the answer", model)


def _tensor_spec(info: Mapping[str, Any]) -> TensorSpec:
    shape_proto = info.get("tensor_shape")
    if shape_proto is None or shape_proto.get("unknown_rank"):
        shape = None
    else:
        sizes = (int(dim.get("size", 0)) for dim in shape_proto.get("dim", ()))
        shape = tuple(None if size < 0 else size for size in sizes)
    return TensorSpec(info.get("dtype", "DT_INVALID"), shape)


def _signature(signature_def: Mapping[str, Any]) -> SignatureInfo:
    return SignatureInfo(
        signature_def.get("method_name", ""),
        {k: _tensor_spec(v) for k, v in signature_def.get("inputs", {}).items()},
        {k: _tensor_spec(v) for k, v in signature_def.get("outputs", {}).items()},
    )


def metadata_from_json(doc: Mapping[str, Any], model: str) -> ModelMetadata:
    """Reads ``{"model_spec": {...}, "metadata": {"signature_def": {"signature_def": {...}}}}``.

    Raises:
        ServingClientError: DATA_LOSS when the document lacks those fields.
    """
    try:
        spec = doc["model_spec"]
        defs = doc["metadata"]["signature_def"].get("signature_def", {})
        return ModelMetadata(spec.get("name", model), int(spec.get("version", 0)),
                             {key: _signature(value) for key, value in defs.items()})
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _malformed("model metadata", model) from None


def status_from_json(doc: Mapping[str, Any], model: str) -> list[ModelVersionStatus]:
    """Reads ``{"model_version_status": [{"version", "state", "status": {...}}, ...]}``.

    Raises:
        ServingClientError: DATA_LOSS when the document lacks those fields.
    """
    try:
        return [ModelVersionStatus(int(entry.get("version", 0)), entry.get("state", "UNKNOWN"),
                                   entry.get("status", {}).get("error_code", "OK"),
                                   entry.get("status", {}).get("error_message", ""))
                for entry in doc.get("model_version_status", [])]
    except (TypeError, ValueError, AttributeError):
        raise _malformed("model status", model) from None


def models_from_json(doc: Mapping[str, Any]) -> list[ModelListing]:
    """Reads ``{"models": [{"name", "model_version_status": [...], "version_labels": {...}}]}``.

    Raises:
        ServingClientError: DATA_LOSS when the document lacks those fields.
    """
    try:
        return [ModelListing(entry["name"], status_from_json(entry, entry["name"]),
                             {k: int(v) for k, v in entry.get("version_labels", {}).items()})
                for entry in doc["models"]]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _malformed("model list", "") from None


def classify_result(rows: Sequence[Sequence[Sequence[Any]]], model: str) -> ClassifyResult:
    """Builds a ``ClassifyResult`` from ``[[(label, score), ...], ...]``, one row per example.

    Raises:
        ServingClientError: DATA_LOSS when the rows do not have one length.
    """
    try:
        labels = np.array([[str(pair[0]) for pair in row] for row in rows], dtype=object)
        scores = np.array([[pair[1] for pair in row] for row in rows], dtype=np.float32)
    except (ValueError, TypeError, IndexError):
        raise _malformed("classification results", model) from None
    if labels.ndim != 2:
        labels, scores = labels.reshape(len(rows), 0), scores.reshape(len(rows), 0)
    return ClassifyResult(labels, scores)
