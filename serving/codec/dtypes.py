"""The one dtype table: TensorFlow ``DataType`` <-> numpy dtype <-> ``TensorProto`` typed field.

Written once as ``_TABLE``; every lookup (``BY_ENUM``, ``BY_NAME``, ``BY_NUMPY``) is derived
from it. numpy-only: bfloat16 is resolved through ``ml_dtypes`` (a TensorFlow
dependency) only when a bfloat16 tensor is actually converted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tf_serving_platform.serving.errors import invalid_argument

__all__ = ["BY_ENUM", "BY_NAME", "BY_NUMPY", "DT_STRING", "TFDType", "dtype_of_array", "resolve"]


@dataclass(frozen=True, slots=True)
class TFDType:
    """One TensorFlow dtype.

    Attributes:
        enum: the ``tensorflow.DataType`` value, e.g. 1 for DT_FLOAT.
        name: TensorFlow's ``DataTypeString``, e.g. "float"; it appears in error messages.
        numpy_name: name of the numpy dtype holding its values ("object" for strings,
            which are arrays of ``bytes``); "" when numpy has no equivalent (quantized,
            resource, variant types), which the codec rejects.
        field: the ``TensorProto`` typed field holding its values, e.g. "float_val".
    """

    enum: int
    name: str
    numpy_name: str
    field: str

    @property
    def numpy(self) -> np.dtype:
        """The numpy dtype of this TensorFlow dtype.

        Raises:
            ServingError: INVALID_ARGUMENT if numpy has no equivalent.
        """
        if not self.numpy_name:
            raise invalid_argument(f"Tensors of type {self.name} are not supported")
        if self.numpy_name == "bfloat16":
            import ml_dtypes  # deferred: only bfloat16 tensors need it

            return np.dtype(ml_dtypes.bfloat16)
        return np.dtype(self.numpy_name)


# DataType enum: (DataTypeString, numpy dtype name, TensorProto typed field).
_TABLE: dict[int, tuple[str, str, str]] = {
    1: ("float", "float32", "float_val"),
    2: ("double", "float64", "double_val"),
    3: ("int32", "int32", "int_val"),
    4: ("uint8", "uint8", "int_val"),
    5: ("int16", "int16", "int_val"),
    6: ("int8", "int8", "int_val"),
    7: ("string", "object", "string_val"),
    8: ("complex64", "complex64", "scomplex_val"),
    9: ("int64", "int64", "int64_val"),
    10: ("bool", "bool", "bool_val"),
    11: ("qint8", "", "int_val"),
    12: ("quint8", "", "int_val"),
    13: ("qint32", "", "int_val"),
    14: ("bfloat16", "bfloat16", "half_val"),
    15: ("qint16", "", "int_val"),
    16: ("quint16", "", "int_val"),
    17: ("uint16", "uint16", "int_val"),
    18: ("complex128", "complex128", "dcomplex_val"),
    19: ("half", "float16", "half_val"),
    20: ("resource", "", "resource_handle_val"),
    21: ("variant", "", "variant_val"),
    22: ("uint32", "uint32", "uint32_val"),
    23: ("uint64", "uint64", "uint64_val"),
}

BY_ENUM: dict[int, TFDType] = {e: TFDType(e, *row) for e, row in _TABLE.items()}
"""DataType enum -> dtype."""

BY_NAME: dict[str, TFDType] = {
    **{d.numpy_name: d for d in BY_ENUM.values() if d.numpy_name},
    **{f"DT_{d.name.upper()}": d for d in BY_ENUM.values()},
    **{d.name: d for d in BY_ENUM.values()},
}
"""TensorFlow names ("float", "DT_FLOAT") and numpy names ("float32") -> dtype.

TensorFlow's names win where they clash: "float" is float32, "half" is float16.
"""

BY_NUMPY: dict[str, TFDType] = {d.numpy_name: d for d in BY_ENUM.values() if d.numpy_name}
"""numpy dtype name -> dtype (the inverse of ``TFDType.numpy``)."""

DT_STRING = BY_ENUM[7]


def resolve(spec: Any) -> TFDType:
    """Returns the dtype a signature, a request or a caller names.

    Args:
        spec: a ``TFDType``, a DataType enum int, a name ("float", "DT_FLOAT",
            "float32"), a ``tf.DType`` (anything with ``as_datatype_enum``) or anything
            ``np.dtype`` accepts.

    Raises:
        ServingError: INVALID_ARGUMENT for a dtype TensorFlow does not have.
    """
    if isinstance(spec, TFDType):
        return spec
    found: TFDType | None = None
    if isinstance(spec, int) and not isinstance(spec, bool):
        found = BY_ENUM.get(spec)
    elif isinstance(spec, str):
        found = BY_NAME.get(spec)
    elif hasattr(spec, "as_datatype_enum"):
        found = BY_ENUM.get(int(spec.as_datatype_enum))
    else:
        try:
            found = dtype_of_array(np.empty(0, dtype=spec))
        except TypeError:
            found = None
    if found is None:
        raise invalid_argument(f"Unknown tensor dtype. Received: dtype={spec!r}")
    return found


def dtype_of_array(a: np.ndarray) -> TFDType:
    """Returns the TensorFlow dtype of a numpy array; str, bytes and object arrays are DT_STRING.

    Raises:
        ServingError: INVALID_ARGUMENT for a numpy dtype TensorFlow has no equivalent of.
    """
    if a.dtype.kind in "OSU":
        return DT_STRING
    found = BY_NUMPY.get(a.dtype.name)
    if found is None:
        raise invalid_argument(f"Unsupported numpy dtype for a tensor. Received: dtype={a.dtype}")
    return found
