"""Predict requests in JSON (``instances`` / ``inputs``) -> numpy, as TensorFlow Serving
parses them.

Mirrors ``FillPredictRequestFromJson`` (``util/json_tensor.cc``) in two steps:
``decode_predict_json`` needs only the body; ``bind_inputs`` then applies the
signature (input names and dtypes). Every error is ``ServingError(INVALID_ARGUMENT)``
with TensorFlow Serving's message text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from tf_serving_platform.serving.codec.json_dense import parse_dense_object
from tf_serving_platform.serving.codec.json_parse import json_value_error, parse_json_object
from tf_serving_platform.serving.codec.values import (
    coerce_to_dtype,
    element_error,
    json_to_array,
    render_json,
)
from tf_serving_platform.serving.errors import ServingError, invalid_argument

__all__ = [
    "PredictJsonRequest",
    "bind_inputs",
    "decode_dense_predict_json",
    "decode_predict_document",
    "decode_predict_json",
    "parse_predict_json",
]

_MAX_RANK = 64  # numpy's limit on dimensions (TensorFlow allows 254)
_PLAIN_ROWS = (
    "instances is a plain list, but expecting list of objects as multiple input tensors "
    "required as per tensorinfo_map"
)
_PLAIN_COLUMNS = (
    "inputs is a plain value/list, but expecting an object as multiple input tensors "
    "required as per tensorinfo_map"
)


class PredictJsonRequest(NamedTuple):
    """A decoded ``:predict`` body.

    Attributes:
        signature_name: ``signature_name`` if the body has one, else None.
        inputs: a dict ``{input name: array}`` when the client named its inputs (objects
            in ``instances``, or an object in ``inputs``); a bare array for a single
            unnamed input. ``bind_inputs`` maps either onto the signature.
        row_format: True for ``instances`` (answer with ``predictions``), False for ``inputs``.
    """

    signature_name: str | None
    inputs: dict[str, np.ndarray] | np.ndarray
    row_format: bool


def _is_named(value: Any) -> bool:
    """An object of named tensors: any JSON object but a ``{"b64": ...}`` value."""
    return type(value) is dict and not (len(value) == 1 and type(value.get("b64")) is str)


def _dense_shape(value: Any) -> list[int]:
    """The shape read along first elements (``GetDenseTensorShape``)."""
    shape = []
    while type(value) is list:
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _layout_error(value: Any, shape: list[int]) -> str | None:
    """The first layout error in ``value`` against ``shape``, in ``FillTensorProto``'s order."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if type(item) is not list:
            if level != len(shape):
                return (
                    f"JSON Value: {render_json(item)} found at incorrect level: {level + 1} "
                    f"in the JSON DOM. Expected at level: {len(shape)}"
                )
        elif level >= len(shape):
            return f"Encountered list at unexpected level: {level} expected < {len(shape)}"
        elif len(item) != shape[level]:
            return (
                f"Encountered list at unexpected size: {len(item)} at level: {level} "
                f"expected size: {shape[level]}"
            )
        else:
            stack.extend((child, level + 1) for child in reversed(item))
    return None


def _shape_text(shape: list[int]) -> str:
    return f"[{','.join(map(str, shape))}]"


def _rows_error(rows: list[Any], name: str | None) -> ServingError:
    """TensorFlow Serving's message for instances that do not stack into one tensor."""
    first: list[int] | None = None
    for index, row in enumerate(rows):
        shape = _dense_shape(row)
        message = _layout_error(row, shape)
        if message is None and first is not None:
            if math.prod(shape) != math.prod(first):
                message = f"Expecting tensor size: {math.prod(first)} but got: {math.prod(shape)}"
            elif shape != first:
                message = f"Expecting shape {_shape_text(first)} but got: {_shape_text(shape)}"
        if message is not None:
            return element_error(index, name, invalid_argument(message))
        first = shape if first is None else first
    return _too_deep()


def _too_deep() -> ServingError:
    return invalid_argument(f"JSON Value nests lists deeper than {_MAX_RANK} levels")


def _tensor(value: Any, *, row_format: bool, name: str | None = None) -> np.ndarray:
    array = json_to_array(value)
    if array is not None:
        return array
    if row_format:
        raise _rows_error(value, name)
    message = _layout_error(value, _dense_shape(value))
    raise invalid_argument(message) if message else _too_deep()


def _decode_instances(rows: list[Any]) -> dict[str, np.ndarray] | np.ndarray:
    if not _is_named(rows[0]):
        for index, row in enumerate(rows):
            if _is_named(row):
                raise invalid_argument(
                    f"Expecting value/list but got object at item {index} of input list"
                )
        return _tensor(rows, row_format=True)
    keys = rows[0].keys()
    for index, row in enumerate(rows):
        if not _is_named(row):
            raise invalid_argument(f"Expecting object but got list at item {index} of input list")
        if row.keys() != keys:
            raise invalid_argument(
                f"Failed to process element: {index} of 'instances' list. JSON object: "
                f"{render_json(row)} keys must be equal to: {','.join(sorted(keys))}"
            )
    return {key: _tensor([row[key] for row in rows], row_format=True, name=key) for key in keys}


def decode_predict_json(body: bytes | bytearray | memoryview | str) -> PredictJsonRequest:
    """Decodes a REST ``:predict`` body without looking at the model.

    Row format (``instances``): a list with one entry per example, stacked into a batch;
    entries are plain values/lists (one unnamed input, returned as a bare array) or
    objects keyed by input name (a dict of arrays). Columnar format (``inputs``): a
    value (one unnamed input) or an object of named tensors, each of its own shape.
    Leaves keep their JSON types (see ``values.json_to_array``); apply the
    signature with ``bind_inputs``.

    Args:
        body: the request body.

    Returns:
        ``PredictJsonRequest(signature_name, inputs, row_format)``.

    Raises:
        ServingError: INVALID_ARGUMENT with TensorFlow Serving's text, e.g.
            ``Missing 'inputs' or 'instances' key``, or, for ragged instances,
            ``Failed to process element: 2 of 'instances' list. Error: INVALID_ARGUMENT:
            Expecting tensor size: 2 but got: 3``.

    Example:
        >>> decode_predict_json(b'{"instances": [[1.0, 2.0], [3.0, 4.0]]}').inputs.shape
        (2, 2)
    """
    request = decode_dense_predict_json(body)
    return request if request is not None else decode_predict_document(parse_predict_json(body))


class _Careful(Exception):
    """A document the fast path does not decide: the careful path reads the body again."""


def decode_dense_predict_json(
    body: bytes | bytearray | memoryview | str,
) -> PredictJsonRequest | None:
    """``decode_predict_json``'s fast path, for well-formed bodies with large tensors.

    Their arrays come straight from the text (``json_dense``); the result is the one the
    careful path gives. None for every other body, and for every error: the careful path
    then decodes it, with TensorFlow Serving's texts.
    """
    document = None if isinstance(body, str) else parse_dense_object(body)
    if document is None or ("instances" in document) == ("inputs" in document):
        return None
    signature = document.get("signature_name")
    if "signature_name" in document and type(signature) is not str:
        return None
    try:
        if "instances" in document:
            return PredictJsonRequest(signature, _dense_rows(document["instances"]), True)
        return PredictJsonRequest(signature, _dense_columns(document["inputs"]), False)
    except (ServingError, _Careful):
        return None


def _dense_rows(rows: Any) -> dict[str, np.ndarray] | np.ndarray:
    if isinstance(rows, np.ndarray):
        return rows
    if type(rows) is not list or not rows or not all(map(_is_named, rows)):
        raise _Careful
    keys = rows[0].keys()
    if any(row.keys() != keys for row in rows):
        raise _Careful
    return {key: _dense_stack([row[key] for row in rows], key) for key in keys}


def _dense_stack(values: list[Any], name: str) -> np.ndarray:
    """One named input of every row, stacked as ``_tensor`` stacks their lists."""
    arrays = [value for value in values if isinstance(value, np.ndarray)]
    if not arrays:
        return _tensor(values, row_format=True, name=name)
    if len(arrays) < len(values) or len({(a.shape, a.dtype) for a in arrays}) > 1:
        raise _Careful  # ragged, or integers in one row and decimals in another
    return np.stack(arrays)


def _dense_columns(value: Any) -> dict[str, np.ndarray] | np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if not _is_named(value):
        raise _Careful
    return {key: item if isinstance(item, np.ndarray) else _tensor(item, row_format=False)
            for key, item in value.items()}


def parse_predict_json(body: bytes | bytearray | memoryview | str) -> dict[str, Any]:
    """Parses a ``:predict`` body and checks ``signature_name``: what TensorFlow Serving does
    before it looks the model and signature up. ``decode_predict_document`` does the rest.

    Raises:
        ServingError: INVALID_ARGUMENT for a body that is not a JSON object or whose
            ``signature_name`` is not a string.
    """
    doc = parse_json_object(body)
    if "signature_name" in doc and not isinstance(doc["signature_name"], str):
        raise json_value_error(
            doc, "not formatted correctly. 'signature_name' key must be a string value."
        )
    return doc


def decode_predict_document(doc: dict[str, Any]) -> PredictJsonRequest:
    """Decodes ``instances`` / ``inputs`` of a document from ``parse_predict_json``.

    See ``decode_predict_json`` for the formats and errors.
    """
    signature = doc.get("signature_name")
    if "instances" in doc and "inputs" in doc:
        raise json_value_error(
            doc,
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ",
        )
    if "instances" in doc:
        rows = doc["instances"]
        if type(rows) is not list:
            raise json_value_error(doc, "Expecting 'instances' to be an list/array")
        if not rows:
            raise json_value_error(doc, "No values in 'instances' array")
        return PredictJsonRequest(signature, _decode_instances(rows), True)
    if "inputs" in doc:
        value = doc["inputs"]
        if _is_named(value):
            return PredictJsonRequest(
                signature, {k: _tensor(v, row_format=False) for k, v in value.items()}, False
            )
        return PredictJsonRequest(signature, _tensor(value, row_format=False), False)
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def bind_inputs(
    inputs: Mapping[str, np.ndarray] | np.ndarray, input_dtypes: Mapping[str, Any], row_format: bool
) -> dict[str, np.ndarray]:
    """Maps decoded inputs onto a signature's inputs and types them, as TensorFlow Serving does.

    A bare array feeds the signature's only input. Named ``instances`` must carry
    exactly the signature's input names; named ``inputs`` must carry each of them
    (other keys are ignored).

    Args:
        inputs: ``PredictJsonRequest.inputs``.
        input_dtypes: the signature's inputs, ``{alias: dtype}`` (any dtype spelling
            ``dtypes.resolve`` accepts); must not be empty (TensorFlow Serving
            answers ``Failed to get input map for signature: <name>`` before this).
        row_format: ``PredictJsonRequest.row_format``.

    Returns:
        ``{alias: array}`` with each array in its signature dtype.

    Raises:
        ServingError: INVALID_ARGUMENT, e.g. ``Missing named input: x in 'inputs' object.``
    """
    if isinstance(inputs, np.ndarray):
        if not input_dtypes:
            raise ValueError("bind_inputs needs the signature's inputs; received none")
        if len(input_dtypes) > 1:
            raise invalid_argument(_PLAIN_ROWS if row_format else _PLAIN_COLUMNS)
        ((alias, dtype),) = input_dtypes.items()
        return {alias: coerce_to_dtype(inputs, dtype, row_format=row_format)}
    if not row_format:
        for alias in input_dtypes:
            if alias not in inputs:
                raise invalid_argument(f"Missing named input: {alias} in 'inputs' object.")
        return {
            alias: coerce_to_dtype(inputs[alias], dtype) for alias, dtype in input_dtypes.items()
        }
    for key in inputs:
        if key not in input_dtypes:
            error = invalid_argument(f"JSON object: does not have named input: {key}")
            raise element_error(0, key, error)
    if inputs.keys() != input_dtypes.keys():
        first = {key: value[0] for key, value in inputs.items()}
        raise invalid_argument(
            f"Failed to process element: 0 of 'instances' list. JSON object: {render_json(first)} "
            f"keys must be equal to: {','.join(sorted(input_dtypes))}"
        )
    return {
        key: coerce_to_dtype(value, input_dtypes[key], key, row_format=True)
        for key, value in inputs.items()
    }
