"""numpy <-> ``tensorflow.TensorProto``, for the gRPC front end and the gRPC client.

numpy-only at import: the protobuf classes are imported on first use (importing
them loads the ``tensorflow`` package).

Decoding follows TensorFlow's ``Tensor::FromProto``: ``tensor_content`` must hold
exactly the tensor's bytes; typed fields (``float_val``, ...) may hold fewer values
than the shape, in which case the last value fills the rest (no value means
zeros), and values beyond the shape are ignored.
"""

from __future__ import annotations

import functools
import math
from types import ModuleType
from typing import Any

import numpy as np

from tf_serving_platform.serving.codec.dtypes import BY_ENUM, DT_STRING, TFDType, dtype_of_array
from tf_serving_platform.serving.codec.values import map_objects
from tf_serving_platform.serving.errors import invalid_argument

__all__ = ["MAX_FILLED_BYTES", "MAX_TENSOR_BYTES", "declared_nbytes", "ndarray_to_tensor_proto",
           "tensor_proto_to_ndarray"]

MAX_RANK = 64  # numpy's limit on dimensions (TensorFlow allows 254)
MAX_TENSOR_BYTES = 2**31 - 1
"""The largest tensor decoded (its non-zero dimensions, for empty ones): what the largest gRPC
message (INT32_MAX bytes, as in TensorFlow Serving) could carry in ``tensor_content``. It stops a
few bytes of shape with one typed value from asking for terabytes."""
MAX_FILLED_BYTES = 1 << 20
"""The largest tensor decoded from fewer typed values than its shape holds (TensorFlow repeats
the last value, or zeros when there is none): beyond it, a request of a few bytes could ask
for gigabytes, which TensorFlow Serving allocates and this engine refuses."""
STRING_OVERHEAD = 40  # bytes a decoded string element takes beyond its characters (CPython)

# Typed fields of fixed-width values: their packed wire payload is the raw little-endian
# array, so it is written with one MergeFromString instead of one append per value.
_PACKED = {
    "float_val": "<f4",
    "double_val": "<f8",
    "scomplex_val": "<c8",
    "dcomplex_val": "<c16",
    "bool_val": "|b1",
}
# numpy dtype of the values as stored in each typed field.
_STORED = {
    "float_val": np.float32,
    "double_val": np.float64,
    "scomplex_val": np.float32,
    "dcomplex_val": np.float64,
    "bool_val": np.bool_,
    "int_val": np.int32,
    "int64_val": np.int64,
    "uint32_val": np.uint32,
    "uint64_val": np.uint64,
    "half_val": np.int32,
    "string_val": object,
}


@functools.cache
def _tensor_pb2() -> ModuleType:
    from tensorflow.core.framework import tensor_pb2  # deferred: loads tensorflow

    return tensor_pb2


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string_values(a: np.ndarray) -> list[bytes]:
    def to_bytes(x: Any) -> bytes:
        if isinstance(x, bytes):
            return x
        if isinstance(x, str):
            return x.encode("utf-8")
        raise invalid_argument(f"String tensors hold bytes or str. Received: {type(x).__name__}")

    return map_objects(to_bytes, a).reshape(-1).tolist()


def _fill_typed_field(proto: Any, dt: TFDType, a: np.ndarray) -> None:
    if dt.field in _PACKED:
        payload = np.asarray(a, dtype=_PACKED[dt.field]).tobytes()
        number = proto.DESCRIPTOR.fields_by_name[dt.field].number
        proto.MergeFromString(_varint(number << 3 | 2) + _varint(len(payload)) + payload)
    elif dt.field == "half_val":  # float16 and bfloat16 travel as their 16 bits
        proto.half_val.extend(np.ascontiguousarray(a).view(np.uint16).reshape(-1).tolist())
    else:
        getattr(proto, dt.field).extend(a.reshape(-1).tolist())


def ndarray_to_tensor_proto(a: Any, use_tensor_content: bool = True) -> Any:
    """Encodes an array as a ``tensorflow.TensorProto``.

    Args:
        a: an array or array-like; str, bytes and object (bytes/str) arrays become
            DT_STRING (str is UTF-8 encoded).
        use_tensor_content: write the values as raw bytes in ``tensor_content``
            (compact, what clients send); False fills the typed ``*_val`` field, which
            TensorFlow Serving's gRPC responses use. Strings always use ``string_val``.

    Returns:
        The ``TensorProto``.

    Raises:
        ServingError: INVALID_ARGUMENT for a dtype TensorFlow has no equivalent of.

    Example:
        >>> ndarray_to_tensor_proto(np.float32([1.5]), use_tensor_content=False).float_val
        [1.5]
    """
    a = np.asarray(a)
    dt = dtype_of_array(a)
    proto = _tensor_pb2().TensorProto(dtype=dt.enum)
    proto.tensor_shape.SetInParent()  # present even for a scalar, as Tensor::AsProtoField sets it
    for size in a.shape:
        proto.tensor_shape.dim.add(size=size)
    if dt is DT_STRING:
        proto.string_val.extend(_string_values(a))
    elif use_tensor_content:
        proto.tensor_content = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
    else:
        _fill_typed_field(proto, dt, a)
    return proto


def _typed_values(proto: Any, dt: TFDType) -> np.ndarray:
    stored = np.asarray(getattr(proto, dt.field), dtype=_STORED[dt.field])
    if dt.field == "half_val":
        return stored.astype(np.uint16).view(dt.numpy)
    if dt.field in ("scomplex_val", "dcomplex_val"):
        if stored.size % 2:
            raise invalid_argument(f"{dt.field} must hold (real, imaginary) pairs")
        return stored.view(dt.numpy)
    return stored.astype(dt.numpy, copy=False)


def _fit(values: np.ndarray, size: int) -> np.ndarray:
    """``values`` stretched to ``size`` the way ``Tensor::FromProto`` does for typed fields."""
    if values.size >= size:
        return values[:size]
    if values.size == 0:
        return np.full(size, b"" if values.dtype == object else 0, dtype=values.dtype)
    return np.concatenate([values, np.full(size - values.size, values[-1], dtype=values.dtype)])


def _stored_count(proto: Any, dt: TFDType) -> int:
    count = len(getattr(proto, dt.field))
    return count // 2 if dt.field in ("scomplex_val", "dcomplex_val") else count


def declared_nbytes(proto: Any) -> int:
    """The bytes a ``TensorProto`` takes once decoded, from its dtype and shape, checked against
    what it carries before anything is allocated.

    A tensor that cannot be decoded counts 0 here: ``tensor_proto_to_ndarray`` says why.

    Raises:
        ServingError: INVALID_ARGUMENT for typed values fewer than the shape holds that would
            be stretched past ``MAX_FILLED_BYTES``.
    """
    dt = BY_ENUM.get(proto.dtype)
    if dt is None or not dt.numpy_name or proto.tensor_shape.unknown_rank:
        return 0
    shape = [dim.size for dim in proto.tensor_shape.dim]
    if len(shape) > MAX_RANK or any(size < 0 for size in shape):
        return 0
    size = math.prod(shape)
    if proto.tensor_content and dt is not DT_STRING:
        return len(proto.tensor_content)
    if dt is DT_STRING:
        nbytes = sum(map(len, proto.string_val)) + STRING_OVERHEAD * size
    else:
        nbytes = size * dt.numpy.itemsize
    carried = _stored_count(proto, dt)
    if carried < size and nbytes > MAX_FILLED_BYTES:
        raise invalid_argument(
            f"A {dt.name} tensor of shape {shape} declares {nbytes} bytes but carries "
            f"{carried} of its {size} values; a tensor filled from fewer values than its "
            f"shape may hold at most {MAX_FILLED_BYTES} bytes")
    return nbytes


def tensor_proto_to_ndarray(proto: Any) -> np.ndarray:
    """Decodes a ``tensorflow.TensorProto`` into an array.

    Reads ``tensor_content`` with ``np.frombuffer`` (the result is then read-only and
    shares the proto's buffer) or the typed field with ``np.asarray``. DT_STRING gives
    an object array of ``bytes``; DT_HALF float16; DT_BFLOAT16 ``ml_dtypes.bfloat16``.

    Raises:
        ServingError: INVALID_ARGUMENT for an unknown or unsupported dtype, an unknown
            rank, more than ``MAX_RANK`` dimensions, a negative dimension, a tensor larger
            than ``MAX_TENSOR_BYTES``, or ``tensor_content`` of the wrong length.
    """
    dt = BY_ENUM.get(proto.dtype)
    if dt is None:
        raise invalid_argument(f"Unknown tensor dtype. Received: dtype={proto.dtype}")
    dtype = dt.numpy  # raises for dtypes numpy cannot hold
    if proto.tensor_shape.unknown_rank:
        raise invalid_argument("Cannot decode a tensor of unknown rank")
    shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    if len(shape) > MAX_RANK:
        raise invalid_argument(f"Tensors may have at most {MAX_RANK} dimensions. Received: "
                               f"{len(shape)}")
    if any(size < 0 for size in shape):
        raise invalid_argument(f"Tensor shape has a negative dimension. Received: shape={shape}")
    size = math.prod(shape)
    # Zeros left out: numpy cannot shape even an empty array as [0, 2**62].
    if math.prod(d for d in shape if d) * dtype.itemsize > MAX_TENSOR_BYTES:
        raise invalid_argument(f"A {dt.name} tensor of shape {list(shape)} is too large: the "
                               f"limit is {MAX_TENSOR_BYTES} bytes")
    if not proto.tensor_content:
        return _fit(_typed_values(proto, dt), size).reshape(shape)
    if dt is DT_STRING:
        raise invalid_argument("DT_STRING tensors must carry their values in string_val")
    dtype = dtype.newbyteorder("<")
    if len(proto.tensor_content) != size * dtype.itemsize:
        raise invalid_argument(
            f"tensor_content holds {len(proto.tensor_content)} bytes but a {dt.name} tensor "
            f"of shape {list(shape)} needs {size * dtype.itemsize}"
        )
    return np.frombuffer(proto.tensor_content, dtype=dtype).reshape(shape)
