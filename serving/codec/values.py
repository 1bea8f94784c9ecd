"""JSON leaf values <-> numpy, with TensorFlow Serving's type rules and value text.

TensorFlow Serving types every JSON value by the signature's dtype
(``AddValueToTensor`` in ``util/json_tensor.cc``). Here that happens in two steps, so
the parser does not need the signature: ``json_to_array`` turns a parsed JSON value
into an array that keeps what JSON said (floats, ints, bools, str, ``{"b64"}`` bytes),
and ``coerce_to_dtype`` applies the signature dtype with TensorFlow Serving's
strictness and error text. Both are numpy-vectorised; only error reporting walks
values one by one.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from tf_serving_platform.serving.codec.dtypes import DT_STRING, TFDType, resolve
from tf_serving_platform.serving.errors import ServingError, invalid_argument, unimplemented

__all__ = ["coerce_to_dtype", "element_error", "format_decimal", "json_to_array", "render_json"]

_FLOAT32_LIMIT = 3.4028234e38  # rapidjson's IsFloat() range
_INT_RANGES = {
    "int32": (-(2**31), 2**31 - 1),  # int16/int8/uint8 too: TF checks IsInt() then casts
    "int64": (-(2**63), 2**63 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}
_INT_RANGE_OF = {"int16": "int32", "int8": "int32", "uint8": "int32"}
_FLOATS = frozenset({"float", "double"})
_JSON_DTYPES = _FLOATS | _INT_RANGES.keys() | _INT_RANGE_OF.keys() | {"bool", "string"}


def map_objects(fn: Callable[[Any], Any], a: np.ndarray) -> np.ndarray:
    """Applies ``fn`` to every element of ``a``, returning an object array of the same shape."""
    out = np.frompyfunc(fn, 1, 1)(a)
    return out if isinstance(out, np.ndarray) else np.array(out, dtype=object)


def _b64_leaf(x: Any) -> Any:
    """Replaces a valid ``{"b64": "..."}`` object by its bytes; leaves anything else as is."""
    text = _b64_text(x)
    if text is None:
        return x
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return x  # coerce_to_dtype reports "Unable to base64 decode"


def _b64_text(x: Any) -> str | None:
    """The payload of a ``{"b64": <string>}`` object with no other key (``IsValBase64Object``)."""
    if type(x) is dict and len(x) == 1 and type(x.get("b64")) is str:
        return x["b64"]
    return None


def json_to_array(value: Any) -> np.ndarray | None:
    """Converts one parsed JSON tensor value (nested lists of leaves) to an array.

    Homogeneous floats give float64, ints int64 (uint64 above int64's range), bools
    bool. Everything else stays an object array: str leaves as ``str``, valid
    ``{"b64": ...}`` objects as ``bytes``, and mixed or invalid leaves untouched so that
    ``coerce_to_dtype`` can name the first one the signature dtype rejects.

    Returns:
        The array, or None when the lists are ragged (the caller builds TensorFlow
        Serving's message for the layout it parsed).
    """
    try:
        obj = np.array(value, dtype=object)
    except ValueError:
        return None
    types = set(map(type, obj.reshape(-1)))  # not .flat: numpy iterates it up to 32 dims only
    if list in types:
        return None
    if types == {float}:
        return obj.astype(np.float64)
    if types == {bool}:
        return obj.astype(np.bool_)
    if types == {int}:
        for dtype in (np.int64, np.uint64):
            try:
                return obj.astype(dtype)
            except OverflowError:
                continue
        return obj
    return map_objects(_b64_leaf, obj) if dict in types else obj


def format_decimal(x: float, single: bool) -> str:
    """Formats a float as TensorFlow Serving's ``WriteDecimal`` does.

    Six significant digits (``%g``) when they read back as the same value (as float32
    when ``single``), else ``%.9g`` / ``%.17g``; ``.0`` appended to bare integers; NaN and
    infinities as the tokens ``NaN``, ``Infinity``, ``-Infinity``.

    Example:
        >>> format_decimal(1 / 3, single=True), format_decimal(3.0, single=False)
        ('0.333333343', '3.0')
    """
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "-Infinity" if x < 0 else "Infinity"
    if single:
        x = float(np.float32(x))
        text = f"{x:g}"
        if np.float32(float(text)) != np.float32(x):
            text = f"{x:.9g}"
    else:
        text = f"{x:g}"
        if float(text) != x:
            text = f"{x:.17g}"
    return text if ("." in text or "e" in text) else text + ".0"


def _plain(x: Any) -> Any:
    if isinstance(x, bytes):
        return {"b64": base64.b64encode(x).decode("ascii")}
    if isinstance(x, np.ndarray | np.generic):
        return x.tolist()
    return str(x)  # what JSON has no value for (a complex number): its text


def render_json(x: Any) -> str:
    """Single-line JSON text of a value for error messages (``JsonValueToString``).

    A decimal is written with ``format_decimal``, in float32 precision when it is
    within float32 range (rapidjson's ``IsFloat``), as TensorFlow Serving does: 0.1 is
    ``0.1``, 0.123456789 is ``0.123456791``. ``bytes`` (decoded b64) are written back as
    ``{"b64": ...}``.
    """
    x = x.item() if isinstance(x, np.generic) else x
    if type(x) is float:
        return format_decimal(x, single=abs(x) <= _FLOAT32_LIMIT)
    return json.dumps(x, default=_plain, ensure_ascii=False, separators=(",", ":"))


def _json_type(x: Any) -> str:
    """rapidjson's type name for a leaf, as in ``JsonTypeString``."""
    if x is None:
        return "Null"
    if isinstance(x, bool):
        return "True" if x else "False"
    if isinstance(x, dict | bytes):
        return "Object"
    return "String" if isinstance(x, str) else "Number"


def _leaf_error(x: Any, dt: TFDType) -> ServingError | None:
    """The error TensorFlow Serving gives one JSON leaf for dtype ``dt``, or None if accepted."""
    x = x.item() if isinstance(x, np.generic) else x
    if isinstance(x, dict | bytes):  # an object: only DT_STRING reads one, as base64
        if dt is not DT_STRING:
            return _type_error(x, dt)
        if isinstance(x, bytes):
            return None
        if _b64_text(x) is not None:
            return invalid_argument("Unable to base64 decode")
        return invalid_argument(
            f"JSON Value: {render_json(x)} not formatted correctly for base64 data"
        )
    if dt.name not in _JSON_DTYPES:
        return unimplemented(f"Conversion of JSON Value: {render_json(x)} to type: {dt.name}")
    return None if _accepts(x, dt) else _type_error(x, dt)


def _type_error(x: Any, dt: TFDType) -> ServingError:
    return invalid_argument(
        f"JSON Value: {render_json(x)} Type: {_json_type(x)} is not of expected type: {dt.name}"
    )


def _accepts(x: Any, dt: TFDType) -> bool:
    kind = type(x)
    if dt.name in _FLOATS:
        return kind is int or kind is float
    if dt.name == "bool":
        return kind is bool
    if dt is DT_STRING:
        return kind is str
    bounds = _INT_RANGES.get(_INT_RANGE_OF.get(dt.name, dt.name))
    return kind is int and bounds is not None and bounds[0] <= x <= bounds[1]


def element_error(index: int, name: str | None, inner: ServingError) -> ServingError:
    """Wraps an error in element ``index`` of ``instances`` as TensorFlow Serving does."""
    key = "" if name is None else f" key: {name}"
    return invalid_argument(
        f"Failed to process element: {index}{key} of 'instances' list. "
        f"Error: {inner.code.name}: {inner.message}"
    )


def _utf8(x: Any) -> bytes:
    return x if isinstance(x, bytes) else x.encode("utf-8", "surrogatepass")


def _convert(a: np.ndarray, dt: TFDType) -> np.ndarray | None:
    """The array as ``dt`` if every leaf is acceptable, else None (vectorised checks)."""
    kind = a.dtype.kind
    # Leaf types of an object array; for typed arrays a sentinel no rule below accepts.
    leaves: set[type] = set(map(type, a.reshape(-1))) if kind == "O" else {np.ndarray}
    if dt is DT_STRING:
        return map_objects(_utf8, a) if kind in "SU" or leaves <= {str, bytes} else None
    if dt.name == "bool":
        return a.astype(np.bool_) if kind == "b" or leaves == {bool} else None
    if dt.name in _FLOATS:
        if kind in "iuf" or leaves <= {int, float}:
            with np.errstate(over="ignore"):
                return a.astype(dt.numpy)  # out-of-range doubles become +-inf, as in TF
        return None
    bounds = _INT_RANGES.get(_INT_RANGE_OF.get(dt.name, dt.name))
    if bounds is None or not (kind in "iu" or leaves == {int}):
        return None
    if not bounds[0] <= a.min() or not a.max() <= bounds[1]:
        return None
    if kind == "O":
        a = a.astype(np.int64 if bounds[0] < 0 else np.uint64)
    return a.astype(dt.numpy)  # int16/int8/uint8 wrap like TF's static_cast


def coerce_to_dtype(
    value: np.ndarray, dtype: Any, name: str | None = None, *, row_format: bool = False
) -> np.ndarray:
    """Types a decoded JSON tensor by its signature dtype, as TensorFlow Serving does.

    Floats accept any number (out-of-range values become +-inf); int32/int16/int8/
    uint8 accept JSON integers within int32 (narrower types wrap, as in TF), int64
    and uint32/uint64 integers within their range; ``1.0`` is not an integer; bool
    accepts only ``true``/``false``; strings accept JSON strings (UTF-8 encoded) and
    ``{"b64": ...}`` bytes. An empty tensor is accepted for any dtype.

    Args:
        value: an array from ``decode_predict_json`` (or any array-like).
        dtype: the signature dtype (anything ``dtypes.resolve`` accepts).
        name: the input's key in ``instances`` objects; None for plain values.
        row_format: whether the request used ``instances``; errors then name the
            element, e.g. ``Failed to process element: 1 of 'instances' list. ...``.

    Returns:
        The array with the numpy dtype of ``dtype`` (object array of bytes for strings).

    Raises:
        ServingError: INVALID_ARGUMENT with TensorFlow Serving's message for the first
            rejected value, e.g. ``JSON Value: 1.5 Type: Number is not of expected
            type: int32``; UNIMPLEMENTED for dtypes JSON cannot express (columnar).
    """
    dt = resolve(dtype)
    a = np.asarray(value)
    if a.size == 0:
        return np.empty(a.shape, dtype=dt.numpy)
    converted = _convert(a, dt)
    if converted is not None:
        return converted
    for index, leaf in enumerate(a.reshape(-1)):
        error = _leaf_error(leaf, dt)
        if error is not None:
            if not row_format:
                raise error
            row = index // (a.size // a.shape[0]) if a.ndim else 0
            raise element_error(row, name, error)
    raise invalid_argument(f"Cannot convert JSON values to type: {dt.name}")  # pragma: no cover
