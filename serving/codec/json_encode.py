"""Predict outputs -> JSON ``predictions`` / ``outputs``, as TensorFlow Serving writes them.

Mirrors ``MakeJsonFromTensors`` (``util/json_tensor.cc``); orjson serialises the numpy
arrays directly.

Numbers: every float parses back to exactly the value TensorFlow Serving's text
parses to (float32: its 6-digit ``%g`` text when that reads back as the same float32,
else its ``%.9g`` text; float64 reads back as itself), but the spelling may differ:
``9000000.0`` for ``9e+06``, ``0.00001`` for ``1e-05``. Whitespace differs too (compact,
not rapidjson's pretty print). Clients and TensorFlow Serving's own tests parse the
JSON, so neither is part of the contract.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from tf_serving_platform.serving.codec.dtypes import BY_NUMPY, DT_STRING
from tf_serving_platform.serving.codec.values import map_objects
from tf_serving_platform.serving.errors import invalid_argument

__all__ = ["encode_predict_json", "tf_float32_values"]

_JSON_OUTPUT_TYPES = frozenset(
    {"float", "double", "int8", "int16", "int32", "uint8", "int64", "uint32", "uint64", "bool"}
)
_POW10 = 10.0 ** np.arange(23)  # powers of ten that are exact doubles
_TOKENS = (b"NaN", b"Infinity", b"-Infinity")
_SIX_DIGITS, _NINE_DIGITS = "%.6g".__mod__, "%.9g".__mod__
_FORMAT_ONE_BY_ONE = 32
"""Up to this many floats, formatting each is cheaper than the vectorised path."""


def _scale(ax: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``ax * 10**shift`` computed with one exact power of ten, plus that power and its side."""
    up = shift >= 0
    power = _POW10[np.minimum(np.abs(shift), 22)]
    scaled = np.empty_like(ax)
    np.multiply(ax, power, out=scaled, where=up)
    np.divide(ax, power, out=scaled, where=~up)
    return scaled, power, up


def _round_significant(x: np.ndarray, digits: int) -> np.ndarray:
    """Rounds finite non-zero doubles to ``digits`` significant digits, like ``%.<digits>g``.

    Returns the double nearest to the rounded decimal, so it prints as that decimal.
    Values whose scale needs an inexact power of ten (below ~1e-14 or above ~1e27)
    are formatted one by one.
    """
    ax = np.abs(x)
    exponent = np.floor(np.log10(ax)).astype(np.int64)
    scaled, power, up = _scale(ax, digits - 1 - exponent)
    # log10 may be off by one next to a power of ten: fix those few and rescale them.
    fix = np.flatnonzero((scaled >= 10.0**digits) | (scaled < 10.0 ** (digits - 1)))
    if fix.size:
        exponent[fix] += np.where(scaled[fix] >= 10.0**digits, 1, -1)
        scaled[fix], power[fix], up[fix] = _scale(ax[fix], digits - 1 - exponent[fix])
    whole = np.rint(scaled)
    rounded = np.empty_like(ax)
    np.divide(whole, power, out=rounded, where=up)
    np.multiply(whole, power, out=rounded, where=~up)
    inexact = np.flatnonzero(np.abs(digits - 1 - exponent) > 22)
    if inexact.size:
        rounded[inexact] = [float(f"{v:.{digits}g}") for v in ax[inexact].tolist()]
    return np.copysign(rounded, x)


def tf_float32_values(a: np.ndarray) -> np.ndarray:
    """The float64 values TensorFlow Serving's text for float32 ``a`` parses back to.

    Vectorised ``WriteDecimal<float>``: 6 significant digits where they read back as
    the same float32, else 9. NaN and infinities pass through.

    Example:
        >>> tf_float32_values(np.array([0.1, 1 / 3], np.float32)).tolist()
        [0.1, 0.333333343]
    """
    a = np.asarray(a, dtype=np.float32)
    if a.size <= _FORMAT_ONE_BY_ONE:
        return _tf_float32_one_by_one(a)
    out = a.astype(np.float64)
    flat = out.reshape(-1)
    index = np.flatnonzero(np.isfinite(flat) & (flat != 0))
    x = flat[index]
    six = _round_significant(x, 6)
    with np.errstate(over="ignore"):
        fits = six.astype(np.float32) == x.astype(np.float32)
    flat[index] = np.where(fits, six, 0.0)
    nine = np.flatnonzero(~fits)
    flat[index[nine]] = _round_significant(x[nine], 9)
    return out


def _tf_float32_one_by_one(a: np.ndarray) -> np.ndarray:
    """:func:`tf_float32_values` through ``%g`` itself (the rule of ``format_decimal`` with
    ``single``, over a list): for a few values, cheaper than the vectorised rounding's fixed
    cost (about 25 numpy calls)."""
    flat = a.reshape(-1)
    values = flat.tolist()
    six = np.array(list(map(float, map(_SIX_DIGITS, values))), dtype=np.float64)
    nine = np.array(list(map(float, map(_NINE_DIGITS, values))), dtype=np.float64)
    return np.where(six.astype(np.float32) == flat, six, nine).reshape(a.shape)


def _text(x: Any) -> str:
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)


def _b64(x: Any) -> dict[str, str]:
    data = x if isinstance(x, bytes) else str(x).encode("utf-8")
    return {"b64": base64.b64encode(data).decode("ascii")}


def _json_ready(name: str, a: np.ndarray) -> np.ndarray:
    """A C-contiguous array orjson writes as TensorFlow Serving would (objects for strings)."""
    dtype = DT_STRING if a.dtype.kind in "OSU" else BY_NUMPY.get(a.dtype.name)
    if dtype is DT_STRING:
        return map_objects(_b64 if name.endswith("_bytes") else _text, a)
    if dtype is None or dtype.name not in _JSON_OUTPUT_TYPES:
        type_name = dtype.name if dtype is not None else a.dtype.name
        raise invalid_argument(f"Failed to write JSON value for tensor type: {type_name}")
    if dtype.name == "float":
        return tf_float32_values(a)
    return a.astype(a.dtype.newbyteorder("="), order="C", copy=False)  # what orjson reads


def _tree(a: np.ndarray) -> Any:
    """What orjson can take: the array itself, or lists for objects and scalars."""
    return a.tolist() if a.dtype == object or a.ndim == 0 else a


def _predictions(values: dict[str, np.ndarray]) -> Any:
    batch = None
    for name, a in values.items():
        if a.ndim == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch is not None and a.shape[0] != batch:
            raise invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {a.shape[0]} expecting: {batch}"
            )
        batch = a.shape[0]
    trees = {name: _tree(a) for name, a in values.items()}
    if len(trees) == 1:
        return next(iter(trees.values()))
    return [{name: tree[i] for name, tree in trees.items()} for i in range(batch or 0)]


def _nonfinite_tokens(values: dict[str, np.ndarray], row_format: bool) -> list[bytes]:
    """NaN/Infinity/-Infinity tokens for the non-finite floats, in document order."""
    keys, tokens = [], []
    for position, a in enumerate(values.values()):
        if a.dtype.kind != "f":
            continue
        flat = a.reshape(-1)
        index = np.flatnonzero(~np.isfinite(flat))
        row = index // max(a.size // a.shape[0], 1) if row_format else np.zeros_like(index)
        keys.append(np.stack([row, np.full_like(index, position), index]))
        tokens.append(np.where(np.isnan(flat[index]), 0, np.where(flat[index] > 0, 1, 2)))
    if not keys:
        return []
    key = np.concatenate(keys, axis=1)
    codes = np.concatenate(tokens)[np.lexsort(key[::-1])]
    return [_TOKENS[code] for code in codes.tolist()]


def _plain(x: Any) -> Any:
    if isinstance(x, np.ndarray | np.generic):
        return x.tolist()
    raise TypeError(type(x).__name__)


def _dumps(document: dict[str, Any], values: dict[str, np.ndarray], row_format: bool) -> bytes:
    """orjson, with the ``null`` it writes for non-finite floats turned into TF's tokens."""
    text = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not any(a.dtype.kind == "f" and not np.isfinite(a).all() for a in values.values()):
        return text
    tokens = _nonfinite_tokens(values, row_format and len(values) > 1)
    parts = text.split(b"null")
    if len(parts) != len(tokens) + 1:  # a string output contains "null": take the slow road
        return json.dumps(document, default=_plain, separators=(",", ":")).encode("utf-8")
    joined: list[bytes] = [b""] * (2 * len(parts) - 1)
    joined[0::2], joined[1::2] = parts, tokens
    return b"".join(joined)


def encode_predict_json(outputs: Mapping[str, np.ndarray], row_format: bool) -> bytes:
    """Encodes predict outputs as TensorFlow Serving's REST response body.

    Row format (the request used ``instances``): ``{"predictions": [...]}``, one entry
    per batch row; a single output drops its name, several give one object per row.
    Columnar (``inputs``): ``{"outputs": tensor}`` for one output, ``{"outputs": {name:
    tensor}}`` for several; a rank-0 tensor is a bare value. String outputs whose name
    ends in ``_bytes`` are written as ``{"b64": ...}``, other strings as UTF-8 text
    (invalid bytes become U+FFFD). NaN and infinities are written as ``NaN``,
    ``Infinity``, ``-Infinity``. See the module docstring for number spelling.

    Args:
        outputs: output alias -> array, in the order to write them.
        row_format: True to answer ``predictions``, False for ``outputs``.

    Raises:
        ServingError: INVALID_ARGUMENT ``Failed to write JSON value for tensor type:
            half`` (only float, double, int8/16/32/64, uint8/32/64, bool and string
            can be written), ``Tensor name: y has no shape information `` (rank 0 in
            row format), ``Tensor name: b has inconsistent batch size: 1 expecting: 2``,
            ``Cannot convert empty tensor map to JSON``.
    """
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    values = {name: _json_ready(name, np.asarray(a)) for name, a in outputs.items()}
    if row_format:
        document = {"predictions": _predictions(values)}
    elif len(values) == 1:
        document = {"outputs": _tree(next(iter(values.values())))}
    else:
        document = {"outputs": {name: _tree(a) for name, a in values.items()}}
    return _dumps(document, values, row_format)
