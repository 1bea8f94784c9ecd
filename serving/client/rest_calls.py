"""TensorFlow Serving's REST API as ``Call`` objects: URLs, JSON bodies and answers, through
the shared codec.

No TensorFlow here (nor in anything it imports): the REST client must stay light.

Predict uses the columnar format (``{"inputs": {alias: tensor}}`` -> ``{"outputs": ...}``), which
keeps each tensor's own shape. Each tensor's JSON is written by ``codec.encode_predict_json``,
the server's own encoder, so numbers read back exactly (float32 as TensorFlow Serving's 6 or 9
significant digits); a string tensor holding bytes that are not UTF-8 goes as ``{"b64": ...}``.
The answer carries no dtypes and drops the name of a single output, so the client reads both
from the signature in the model's metadata (cached) and types the values with
``codec.coerce_to_dtype``, TensorFlow Serving's own JSON typing rules. REST has no
``output_filter``: the client checks the aliases against the signature and drops the rest.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import orjson

from tf_serving_platform.serving import codec
from tf_serving_platform.serving.client.core import Call
from tf_serving_platform.serving.client.errors import ServingClientError, error_from_http
from tf_serving_platform.serving.client.queries import ModelRef, PredictQuery, invalid
from tf_serving_platform.serving.client.results import (
    ModelMetadata,
    SignatureInfo,
    classify_result,
    metadata_from_json,
    models_from_json,
    status_from_json,
)
from tf_serving_platform.serving.codec.values import json_to_array
from tf_serving_platform.serving.errors import ServingError

__all__ = ["HttpRequest", "RestCalls", "predict_body"]

_COLUMNS_PREFIX = b'{"outputs":'  # what encode_predict_json writes before a single tensor
NO_RELOAD = ("TensorFlow Serving's REST API has no config reload endpoint; use "
             "GrpcClient.reload_config (ModelService/HandleReloadConfigRequest)")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] | None = None
    """More headers than the client's own (the V2 binary data's header length)."""


def _needs_b64(a: np.ndarray) -> bool:
    if a.dtype.kind not in "OS":
        return False
    for x in a.flat:
        if isinstance(x, bytes):
            try:
                x.decode("utf-8")
            except UnicodeDecodeError:
                return True
    return False


def _tensor_json(name: str, a: np.ndarray, model: str) -> bytes:
    # encode_predict_json writes one tensor as {"outputs":<tensor>} and b64-encodes string
    # tensors whose alias ends in "_bytes": the alias given here picks that encoding.
    try:
        text = codec.encode_predict_json({"_bytes" if _needs_b64(a) else "t": a},
                                         row_format=False)
    except ServingError as e:
        raise invalid(f"Input {name!r} cannot be sent as JSON: {e.message}", model) from None
    return text[len(_COLUMNS_PREFIX):-1]


def predict_body(inputs: dict[str, np.ndarray] | np.ndarray, signature: str | None,
                 model: str) -> bytes:
    """The columnar ``:predict`` body for ``inputs`` (a bare array: the single input)."""
    if isinstance(inputs, dict):
        tensors = b",".join(orjson.dumps(name) + b":" + _tensor_json(name, a, model)
                            for name, a in inputs.items())
        parts = [b'{"inputs":{', tensors, b"}"]
    else:
        parts = [b'{"inputs":', _tensor_json("inputs", inputs, model)]
    if signature:
        parts += [b',"signature_name":', orjson.dumps(signature)]
    return b"".join([*parts, b"}"])


def read_json(answer: tuple[int, bytes], model: str) -> dict[str, Any]:
    """The JSON document of a 200 answer; the client error of any other."""
    status, body = answer
    if status != 200:
        raise error_from_http(status, body, model)
    try:
        return codec.parse_json_object(body)
    except ServingError as e:
        raise ServingClientError(grpc.StatusCode.DATA_LOSS,
                                 f"The server's answer is not JSON: {e.message}", model) from None


def _is_named(value: Any) -> bool:
    return isinstance(value, dict) and set(value) != {"b64"}


def outputs_from_json(answer: tuple[int, bytes], signature: SignatureInfo | None,
                      output_filter: tuple[str, ...], model: str) -> dict[str, np.ndarray]:
    """The ``{"outputs": ...}`` answer as typed arrays, named and filtered by the signature."""
    doc = read_json(answer, model)
    specs = signature.outputs if signature is not None else {}
    value = doc.get("outputs")
    if len(specs) == 1:
        named = {next(iter(specs)): value}
    elif _is_named(value):
        named = value
    else:
        raise ServingClientError(grpc.StatusCode.DATA_LOSS, "The answer's outputs do not match "
                                 f"the signature's {sorted(specs)}", model)
    outputs = {}
    for alias in output_filter or named:
        array = json_to_array(named[alias]) if alias in named else None
        if array is None:
            raise ServingClientError(grpc.StatusCode.DATA_LOSS,
                                     f"Output {alias!r} is missing or ragged", model)
        spec = specs.get(alias)
        outputs[alias] = codec.coerce_to_dtype(array, spec.dtype) if spec else array
    return outputs


class RestCalls:
    """Builds the REST request of each API method and reads its answer."""

    def needs_metadata(self, query: PredictQuery) -> bool:
        return True  # the answer names and types its outputs only through the signature

    def predict(self, query: PredictQuery, metadata: ModelMetadata | None) -> Call:
        ref = query.ref
        signature = ref.signature_info(metadata)
        inputs = query.inputs
        if signature is not None:  # else the server answers its "signature not found"
            query.check_output_filter(signature)
            inputs = query.named_inputs(signature)
        body = predict_body(inputs, ref.signature, ref.model)
        parse = functools.partial(outputs_from_json, signature=signature,
                                  output_filter=query.output_filter, model=ref.model)
        return Call(HttpRequest("POST", ref.rest_path(":predict"), body), parse, ref.model)

    def _examples_call(self, ref: ModelRef, verb: str, body: bytes, read) -> Call:
        def parse(answer: tuple[int, bytes]) -> Any:
            return read(read_json(answer, ref.model).get("results", []))
        return Call(HttpRequest("POST", ref.rest_path(f":{verb}"), body), parse, ref.model)

    def classify(self, ref: ModelRef, body: bytes) -> Call:
        return self._examples_call(ref, "classify", body,
                                   lambda rows: classify_result(rows, ref.model))

    def regress(self, ref: ModelRef, body: bytes) -> Call:
        return self._examples_call(ref, "regress", body,
                                   lambda values: np.asarray(values, dtype=np.float32))

    def status(self, ref: ModelRef) -> Call:
        return Call(HttpRequest("GET", ref.rest_path()),
                    lambda answer: status_from_json(read_json(answer, ref.model), ref.model),
                    ref.model)

    def metadata(self, ref: ModelRef) -> Call:
        return Call(HttpRequest("GET", ref.rest_path("/metadata")),
                    lambda answer: metadata_from_json(read_json(answer, ref.model), ref.model),
                    ref.model)

    def reload_config(self, config: Any) -> Call:
        raise ServingClientError(grpc.StatusCode.UNIMPLEMENTED, NO_RELOAD)

    def list_models(self) -> Call:
        return Call(HttpRequest("GET", "/v1/models"),
                    lambda answer: models_from_json(read_json(answer, "")), "")
