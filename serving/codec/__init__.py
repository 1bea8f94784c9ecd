"""The tensor codec shared by the REST front end, the gRPC front end and the Python clients.

One import for every wire conversion, in TensorFlow Serving's formats; one module per
format (``dtypes``, ``json_decode``, ``json_encode``, ``json_parse``, ``json_dense``,
``values``, ``proto``, ``examples`` for tf.Example, ``v2`` for the Open Inference Protocol),
re-exported here:

* JSON requests: ``decode_predict_json`` (body -> ``PredictJsonRequest``; in two steps,
  ``parse_predict_json`` then ``decode_predict_document``, for a server that looks the
  model up in between as TensorFlow Serving does), then ``bind_inputs`` /
  ``coerce_to_dtype`` (signature names and dtypes, with TensorFlow Serving's strictness).
* JSON responses: ``encode_predict_json`` (``predictions`` / ``outputs``).
* gRPC: ``ndarray_to_tensor_proto`` / ``tensor_proto_to_ndarray``, and ``declared_nbytes`` (what a
  ``TensorProto`` will take decoded, checked before it is).
* The dtype table: ``resolve``, ``dtype_of_array``, ``BY_ENUM``, ``BY_NAME``, ``BY_NUMPY``.

Everything is a pure function over numpy arrays and raises
``serving.errors.ServingError`` (INVALID_ARGUMENT, or UNIMPLEMENTED for dtypes JSON
cannot carry). Importing this module imports numpy, orjson and grpc only; the
protobuf half loads TensorFlow's protobuf classes on first use.

Typical REST round trip:

    >>> request = decode_predict_json(b'{"instances": [1.0, 2.0]}')
    >>> inputs = bind_inputs(request.inputs, {"x": "float"}, request.row_format)
    >>> encode_predict_json({"y": inputs["x"] * 2}, request.row_format)
    b'{"predictions":[2.0,4.0]}'
"""

from __future__ import annotations

from tf_serving_platform.serving.codec.dtypes import (
    BY_ENUM,
    BY_NAME,
    BY_NUMPY,
    TFDType,
    dtype_of_array,
    resolve,
)
from tf_serving_platform.serving.codec.json_decode import (
    PredictJsonRequest,
    bind_inputs,
    decode_dense_predict_json,
    decode_predict_document,
    decode_predict_json,
    parse_predict_json,
)
from tf_serving_platform.serving.codec.json_encode import encode_predict_json, tf_float32_values
from tf_serving_platform.serving.codec.json_parse import parse_json_object
from tf_serving_platform.serving.codec.proto import (
    declared_nbytes,
    ndarray_to_tensor_proto,
    tensor_proto_to_ndarray,
)
from tf_serving_platform.serving.codec.values import coerce_to_dtype, format_decimal

__all__ = [
    "BY_ENUM",
    "BY_NAME",
    "BY_NUMPY",
    "PredictJsonRequest",
    "TFDType",
    "bind_inputs",
    "coerce_to_dtype",
    "declared_nbytes",
    "decode_dense_predict_json",
    "decode_predict_document",
    "decode_predict_json",
    "dtype_of_array",
    "encode_predict_json",
    "format_decimal",
    "ndarray_to_tensor_proto",
    "parse_json_object",
    "parse_predict_json",
    "resolve",
    "tensor_proto_to_ndarray",
    "tf_float32_values",
]
