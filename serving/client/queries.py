"""What a call asks for, independent of the wire: the model reference, the inputs, the examples.

Both clients validate arguments here, before anything is sent, and raise the one client error
type with INVALID_ARGUMENT for a mistake (a version and a label together, a bare array for a
model with several inputs, an unknown output alias), as the server would.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import grpc
import numpy as np
import orjson

from tf_serving_platform.serving import codec
from tf_serving_platform.serving.client.errors import ServingClientError
from tf_serving_platform.serving.client.results import ModelMetadata, SignatureInfo, TensorSpec
from tf_serving_platform.serving.errors import ServingError

__all__ = ["MetadataCache", "ModelRef", "PredictQuery", "examples_body"]

DEFAULT_SIGNATURE = "serving_default"
Inputs = Mapping[str, Any] | Any
"""``{input alias: array-like}``, or one array-like for a model with a single input."""
BARE = ""
"""``PredictQuery.untyped``'s name for a bare input."""


def invalid(message: str, model: str) -> ServingClientError:
    return ServingClientError(grpc.StatusCode.INVALID_ARGUMENT, message, model)


@dataclass(frozen=True, slots=True)
class ModelRef:
    """Which servable a call is for: a model, at most one of version and label, a signature.

    Raises:
        ServingClientError: INVALID_ARGUMENT for an empty name, a negative or non-integer
            version, or a version and a label together (TensorFlow Serving's ``ModelSpec`` holds
            one of them).
    """

    model: str
    version: int | None = None
    label: str | None = None
    signature: str | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise invalid("A model name is required", self.model)
        if self.version is not None and self.label is not None:
            raise invalid("Give a version or a label, not both. Received: "
                          f"version={self.version}, label={self.label!r}", self.model)
        if self.version is not None and (type(self.version) is not int or self.version < 0):
            raise invalid(f"version must be an integer >= 0. Received: version={self.version!r}",
                          self.model)
        if self.label == "":
            raise invalid("label must not be empty", self.model)

    def rest_path(self, suffix: str = "") -> str:
        """``/v1/models/<name>[/versions/<v> | /labels/<l>]`` + ``suffix`` (``:predict``,
        ``/metadata``), names percent-encoded."""
        path = f"/v1/models/{quote(self.model, safe='')}"
        if self.version is not None:
            path += f"/versions/{self.version}"
        elif self.label is not None:
            path += f"/labels/{quote(self.label, safe='')}"
        return path + suffix

    def v2_path(self, suffix: str = "") -> str:
        """``/v2/models/<name>[/versions/<v>]`` + ``suffix`` (``/infer``): the Open Inference
        Protocol has no labels."""
        path = f"/v2/models/{quote(self.model, safe='')}"
        return (path if self.version is None else f"{path}/versions/{self.version}") + suffix

    @property
    def signature_key(self) -> str:
        """The signature the server runs: ``serving_default`` when none is named."""
        return self.signature or DEFAULT_SIGNATURE

    def signature_info(self, metadata: ModelMetadata | None) -> SignatureInfo | None:
        """This call's signature in ``metadata``, or None if the model has no such signature."""
        return None if metadata is None else metadata.signatures.get(self.signature_key)


def _array(value: Any, name: str, model: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    try:
        a = np.asarray(value)
    except UnicodeError:  # str and non-ASCII bytes mixed
        return np.array(value, dtype=object)
    except ValueError as e:
        raise invalid(f"Input {name!r} is not a dense tensor: {e}", model) from None
    if a.dtype.kind == "S":
        # numpy's fixed-width bytes drop trailing NUL bytes; binary data must keep them.
        return np.array(value, dtype=object)
    return a


def _typed(a: np.ndarray, spec: TensorSpec, name: str, model: str) -> np.ndarray:
    """An input given as Python values, in its signature dtype by TensorFlow Serving's JSON
    rules (1.5 is no int32), as a REST server would type it; numpy's cast for the dtypes JSON
    cannot carry (half, ...)."""
    try:
        return codec.coerce_to_dtype(a, spec.dtype)
    except ServingError as e:
        if e.code is grpc.StatusCode.UNIMPLEMENTED:
            return a.astype(spec.numpy_dtype)
        raise invalid(f"Input {name!r}: {e.message}", model) from None


@dataclass(frozen=True, slots=True)
class PredictQuery:
    """A predict call.

    Attributes:
        ref: the servable.
        inputs: arrays by alias, or one array for a single-input signature.
        untyped: the aliases given as Python values rather than numpy arrays (``BARE`` for a
            bare one): their dtype comes from the signature, not from numpy's guess (float64
            for ``[1.0]``, which a float32 input refuses on gRPC).
        output_filter: the aliases to return; empty for all.
    """

    ref: ModelRef
    inputs: dict[str, np.ndarray] | np.ndarray
    untyped: frozenset[str] = frozenset()
    output_filter: tuple[str, ...] = ()

    @classmethod
    def build(cls, ref: ModelRef, inputs: Inputs,
              output_filter: Sequence[str] | str | None = None) -> PredictQuery:
        """Turns the caller's array-likes into arrays (one tensor per input)."""
        named = isinstance(inputs, Mapping)
        given = dict(inputs) if named else {BARE: inputs}
        if named and (not given or not all(isinstance(k, str) and k for k in given)):
            raise invalid(f"inputs must map input names to arrays. Received keys: {list(given)}",
                          ref.model)
        arrays = {k: _array(v, k or "inputs", ref.model) for k, v in given.items()}
        untyped = frozenset(k for k, v in given.items() if not isinstance(v, np.ndarray))
        if isinstance(output_filter, str):
            output_filter = [output_filter]
        return cls(ref, arrays if named else arrays[BARE], untyped, tuple(output_filter or ()))

    def named_inputs(self, signature: SignatureInfo, typed: bool = False
                     ) -> dict[str, np.ndarray]:
        """The inputs by alias (a bare array named after the signature's only input); with
        ``typed``, those in ``untyped`` converted to their signature dtype.

        Raises:
            ServingClientError: INVALID_ARGUMENT for a bare array when the signature has
                several inputs, or for values the signature dtype refuses.
        """
        if isinstance(self.inputs, dict):
            named, untyped = self.inputs, self.untyped
        elif len(signature.inputs) == 1:
            alias = next(iter(signature.inputs))
            named, untyped = {alias: self.inputs}, frozenset({alias} if self.untyped else ())
        else:
            raise invalid(f"Signature {self.ref.signature_key!r} has inputs "
                          f"{sorted(signature.inputs)}: pass a dict of arrays, not one array",
                          self.ref.model)
        if not typed:
            return named
        return {alias: _typed(a, signature.inputs[alias], alias, self.ref.model)
                if alias in untyped and alias in signature.inputs else a
                for alias, a in named.items()}

    def check_output_filter(self, signature: SignatureInfo) -> None:
        """Fails as TensorFlow Serving's Predict does on an unknown or repeated alias.

        Raises:
            ServingClientError: INVALID_ARGUMENT with TensorFlow Serving's message.
        """
        seen: set[str] = set()
        for alias in self.output_filter:
            if alias not in signature.outputs:
                expected = ",".join(sorted(signature.outputs))
                raise invalid(f"output tensor alias not found in signature: {alias} Outputs "
                              f"expected to be in the set {{{expected}}}.", self.ref.model)
            if alias in seen:
                raise invalid(f"duplicate output tensor alias: {alias}", self.ref.model)
            seen.add(alias)


def _feature_json(value: Any) -> Any:
    """orjson's fallback: bytes as ``{"b64": ...}`` (valid in any feature), arrays as lists."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Feature values must be numbers, strings or bytes. Received: "
                    f"{type(value).__name__}")


def examples_body(examples: Sequence[Mapping[str, Any]], context: Mapping[str, Any] | None,
                  signature: str | None, model: str) -> bytes:
    """A ``:classify`` / ``:regress`` JSON body, which the gRPC client also parses into its
    ``tensorflow.serving.Input`` with the shared codec: one rule for both wires (ints become
    ``int64_list``, other numbers ``float_list``, str and bytes ``bytes_list``).

    Raises:
        ServingClientError: INVALID_ARGUMENT for a value JSON cannot carry.
    """
    if isinstance(examples, Mapping) or not isinstance(examples, Sequence):
        raise invalid("examples must be a list of {feature: value} dicts", model)
    doc: dict[str, Any] = {"examples": list(examples)}
    if context is not None:
        doc["context"] = context
    if signature:
        doc["signature_name"] = signature
    try:
        return orjson.dumps(doc, default=_feature_json, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError as e:
        raise invalid(str(e), model) from None


class MetadataCache:
    """Model metadata by (model, version, label), kept ``ttl_s`` seconds.

    The REST client needs a signature's outputs to name and type what ``:predict`` answers, the
    gRPC client the input alias of a bare array; one lookup serves many calls. The time limit
    bounds how long a new version with other signatures can be misread after it loads.
    """

    def __init__(self, ttl_s: float = 60.0) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[tuple, tuple[float, ModelMetadata]] = {}

    @staticmethod
    def _key(ref: ModelRef) -> tuple:
        return ref.model, ref.version, ref.label

    def get(self, ref: ModelRef) -> ModelMetadata | None:
        entry = self._entries.get(self._key(ref))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, ref: ModelRef, metadata: ModelMetadata) -> None:
        self._entries[self._key(ref)] = (time.monotonic() + self.ttl_s, metadata)
