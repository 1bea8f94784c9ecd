"""The Open Inference Protocol's ("KServe V2") tensors: datatypes, JSON data, binary data.

One table maps V2 datatypes to numpy and back; tensors travel as JSON ``data`` (the flattened
row-major elements), as the binary tensor data extension (raw little-endian bytes; a ``BYTES``
element is a 4-byte little-endian length and its bytes), or in gRPC as typed ``contents`` or
``raw_input_contents`` (the same raw layout). Errors are INVALID_ARGUMENT with the offending
tensor named.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from tf_serving_platform.serving.errors import invalid_argument

DATATYPES: dict[str, str] = {
    "BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32",
    "UINT64": "uint64", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "FP16": "float16", "FP32": "float32", "FP64": "float64", "BYTES": "object",
}
"""V2 datatype -> numpy dtype name (BYTES: object arrays of ``bytes``)."""
BY_NUMPY = {numpy: v2 for v2, numpy in DATATYPES.items()}
CONTENTS_FIELD = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
                  "INT32": "int_contents", "INT64": "int64_contents",
                  "UINT8": "uint_contents", "UINT16": "uint_contents",
                  "UINT32": "uint_contents", "UINT64": "uint64_contents",
                  "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}
"""The typed field of ``InferTensorContents`` that holds each datatype (FP16: raw only)."""


def datatype_of(array: np.ndarray) -> str:
    """The V2 datatype of a numpy array.

    Raises:
        ServingError: INVALID_ARGUMENT for a dtype V2 cannot carry (complex, bfloat16).
    """
    name = "object" if array.dtype == object else array.dtype.name
    if name not in BY_NUMPY:
        raise invalid_argument(f"datatype {array.dtype} has no Open Inference Protocol "
                               "equivalent")
    return BY_NUMPY[name]


def numpy_dtype(datatype: str, name: str) -> np.dtype:
    if datatype not in DATATYPES:
        raise invalid_argument(f"input '{name}': unsupported datatype '{datatype}'; expected "
                               f"one of {', '.join(DATATYPES)}")
    return np.dtype(DATATYPES[datatype])


def _shape(shape: Any, name: str) -> tuple[int, ...]:
    if not isinstance(shape, list | tuple) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise invalid_argument(f"input '{name}': shape must be a list of non-negative integers")
    return tuple(shape)


def _count(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def _flatten(data: list) -> list:
    """Nested ``data`` (as the shape) flattened: the elements in order."""
    flat: list = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


ELEMENT_TYPES = {"BYTES": {str}, "BOOL": {bool}}
"""The Python types JSON elements of a datatype may have (numbers: below)."""


def _element_types(datatype: str, dtype: np.dtype) -> set[type]:
    """1.5 is no INT32, ``true`` no number, "1" no FP32."""
    if datatype in ELEMENT_TYPES:
        return ELEMENT_TYPES[datatype]
    return {int} if dtype.kind in "iu" else {int, float}


def from_json(name: str, datatype: str, shape: Any, data: Any) -> np.ndarray:
    """A JSON tensor (``{"name", "datatype", "shape", "data"}``) as a numpy array.

    The elements' types are read in one pass in C (``set(map(type, ...))``), not by a Python
    loop over the values; the flat ``data`` most clients send is not copied."""
    dims = _shape(shape, name)
    dtype = numpy_dtype(datatype, name)
    values = data if isinstance(data, list) else [data]
    types = set(map(type, values))
    if list in types:
        values = _flatten(values)
        types = set(map(type, values))
    if len(values) != _count(dims):
        raise invalid_argument(f"input '{name}': shape {list(dims)} needs {_count(dims)} "
                               f"elements; data has {len(values)}")
    try:
        if not types <= _element_types(datatype, dtype):
            raise TypeError
        if datatype == "BYTES":
            array = np.empty(len(values), dtype=object)
            array[:] = [v.encode() for v in values]
        else:
            array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise invalid_argument(f"input '{name}': data does not hold {datatype} values"
                               ) from None
    return array.reshape(dims)


def to_json(array: np.ndarray) -> list | np.ndarray:
    """``data`` of a JSON output: the flattened elements (BYTES as text where UTF-8), for
    ``orjson.dumps(..., option=orjson.OPT_SERIALIZE_NUMPY)``, which writes each number in its
    own precision (a float32 as the shortest text that reads back as that float32)."""
    flat = np.ascontiguousarray(array.reshape(-1))
    if array.dtype == object:
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
    return flat


def from_raw(name: str, datatype: str, shape: Any, raw: bytes) -> np.ndarray:
    """A tensor from the binary layout (HTTP binary extension, gRPC ``raw_input_contents``)."""
    dims = _shape(shape, name)
    count = _count(dims)
    if datatype == "BYTES":
        return _bytes_from_raw(name, dims, count, raw)
    dtype = numpy_dtype(datatype, name).newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise invalid_argument(f"input '{name}': {len(raw)} bytes of binary data, but shape "
                               f"{list(dims)} of {datatype} needs {count * dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=False
                                                  ).reshape(dims)


def _bytes_from_raw(name: str, dims: tuple[int, ...], count: int, raw: bytes) -> np.ndarray:
    values, offset = [], 0
    view = memoryview(raw)
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise invalid_argument(f"input '{name}': BYTES binary data ends inside a length")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise invalid_argument(f"input '{name}': BYTES element runs past the binary data")
        values.append(bytes(view[offset:offset + length]))
        offset += length
    if len(values) != count:
        raise invalid_argument(f"input '{name}': shape {list(dims)} needs {count} elements; "
                               f"binary data has {len(values)}")
    array = np.empty(count, dtype=object)
    array[:] = values
    return array.reshape(dims)


def to_raw(array: np.ndarray) -> bytes:
    """The binary layout of an array (little-endian; BYTES length-prefixed)."""
    if array.dtype == object:
        parts = []
        for value in array.reshape(-1):
            data = value if isinstance(value, bytes) else str(value).encode()
            parts.append(struct.pack("<I", len(data)) + data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def from_contents(name: str, datatype: str, shape: Any, contents: Any) -> np.ndarray:
    """A gRPC tensor given in typed ``InferTensorContents``."""
    dims = _shape(shape, name)
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        numpy_dtype(datatype, name)  # an unknown datatype says so
        raise invalid_argument(f"input '{name}': {datatype} must be sent in "
                               "raw_input_contents")
    values = list(getattr(contents, field))
    if len(values) != _count(dims):
        raise invalid_argument(f"input '{name}': shape {list(dims)} needs {_count(dims)} "
                               f"elements; contents has {len(values)}")
    if datatype == "BYTES":
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(dims)
    try:
        return np.asarray(values, dtype=numpy_dtype(datatype, name)).reshape(dims)
    except OverflowError:
        raise invalid_argument(f"input '{name}': a value is out of range for {datatype}"
                               ) from None
