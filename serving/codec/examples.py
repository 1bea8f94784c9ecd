"""Classify/Regress JSON <-> ``tensorflow.serving.Input`` and results (``util/json_tensor.cc``).

Request: ``{"signature_name": ..., "context": {features}, "examples": [{features}, ...]}``.
A feature value is a scalar or a list of scalars of one kind: JSON integers (and booleans)
become ``int64_list``, numbers with a fraction or exponent ``float_list``, strings and
``{"b64": ...}`` ``bytes_list``. Response: ``{"results": ...}``, non-finite values written as
TensorFlow Serving's ``NaN`` / ``Infinity`` / ``-Infinity`` tokens.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import numpy as np
import orjson

from tf_serving_platform.serving.codec.json_encode import tf_float32_values
from tf_serving_platform.serving.codec.json_parse import json_value_error, parse_json_object
from tf_serving_platform.serving.errors import invalid_argument

INT64_MAX = 2**63 - 1
_KINDS = {int: "int64", bool: "int64", float: "float", str: "bytes", bytes: "bytes"}


def _json_type(value: Any) -> str:
    """rapidjson's type name (``JsonTypeString``): booleans are ``True`` / ``False``."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    return {list: "Array", dict: "Object", str: "String"}.get(type(value), "Number")


def _scalar(name: str, value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise invalid_argument("Unable to base64 decode") from None
    if value is None or isinstance(value, list | dict):
        raise invalid_argument(f"Feature: {name} has element with unexpected JSON type: "
                               f"{_json_type(value)}")
    if isinstance(value, int) and not isinstance(value, bool) and value > INT64_MAX:
        raise invalid_argument(f"Feature: {name} has uint64_t element. Only int64_t is "
                               "supported.")
    return value


def _feature(feature, name: str, value: Any) -> None:
    values = [_scalar(name, v) for v in (value if isinstance(value, list) else [value])]
    kinds = {_KINDS[type(v)] for v in values}
    if len(kinds) > 1:
        first = _KINDS[type(values[0])]
        raise invalid_argument(f"Unexpected element type in feature: {name} expecting type: "
                               f"{first}")
    kind = kinds.pop() if kinds else "float"
    if kind == "int64":
        feature.int64_list.value.extend(int(v) for v in values)
    elif kind == "float":
        feature.float_list.value.extend(values)
    else:
        feature.bytes_list.value.extend(v if isinstance(v, bytes) else v.encode()
                                        for v in values)


def _example(value: Any):
    from tensorflow.core.example import example_pb2

    if not isinstance(value, dict):
        raise invalid_argument(f"Example must be JSON object but got JSON {_json_type(value)}")
    example = example_pb2.Example()
    for name, feature_value in value.items():
        _feature(example.features.feature[name], name, feature_value)
    return example


def decode_examples_json(body: bytes) -> tuple[str | None, Any]:
    """Parse a ``:classify``/``:regress`` body into ``(signature_name, Input proto)``.

    Same order as ``FillClassifyRegressRequestFromJson``: ``signature_name``, then ``context``,
    then ``examples`` (whose missing-key message says "classify" for both verbs, as TensorFlow
    Serving's does).

    Raises:
        ServingError: INVALID_ARGUMENT with TensorFlow Serving's messages.
    """
    from tensorflow_serving.apis import input_pb2

    doc = parse_json_object(body)
    signature_name = doc.get("signature_name")
    if "signature_name" in doc and not isinstance(signature_name, str):
        raise json_value_error(doc, "not formatted correctly. 'signature_name' key must be a "
                                    "string value.")
    context = _example(doc["context"]) if "context" in doc else None
    if "examples" not in doc:
        raise json_value_error(doc, "When method is classify, key 'examples' is expected and "
                                    "was not found")
    examples = doc["examples"]
    if not isinstance(examples, list):
        raise json_value_error(doc, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise json_value_error(doc, "'examples' value is an empty array")
    parsed = [_example(e) for e in examples]
    if context is not None:
        model_input = input_pb2.Input()
        model_input.example_list_with_context.context.CopyFrom(context)
        model_input.example_list_with_context.examples.extend(parsed)
    else:
        model_input = input_pb2.Input(example_list=input_pb2.ExampleList(examples=parsed))
    return signature_name, model_input


def encode_classify_json(classes: np.ndarray | None, scores: np.ndarray | None) -> bytes:
    """``{"results": [[[label, score], ...], ...]}``; label ``""`` without a classes output."""
    shape = (scores if scores is not None else classes).shape
    labels = np.full(shape, "", dtype=object) if classes is None else np.vectorize(
        lambda c: c.decode("utf-8", "replace") if isinstance(c, bytes) else str(c),
        otypes=[object])(classes)
    values = np.zeros(shape) if scores is None else tf_float32_values(scores)
    rows = [[[label, score] for label, score in zip(lr, vr, strict=True)]
            for lr, vr in zip(labels.tolist(), values.tolist(), strict=True)]
    return _dumps({"results": rows}, values)


def encode_regress_json(values: np.ndarray) -> bytes:
    """``{"results": [v1, v2, ...]}``."""
    values = tf_float32_values(values)
    return _dumps({"results": values.tolist()}, values)


def _dumps(document: dict, values: np.ndarray) -> bytes:
    """orjson, or the stdlib when ``values`` holds NaN/inf: it writes TF's ``NaN``/``Infinity``
    tokens where orjson would write ``null``."""
    if np.isfinite(values).all():
        return orjson.dumps(document)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
