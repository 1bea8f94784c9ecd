"""Table-driven tests of serving.codec and serving.errors against TensorFlow Serving's contract.

Comments name the TensorFlow Serving source a case follows; messages are
TensorFlow Serving's (``util/json_tensor.cc``) unless a comment says otherwise.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import grpc
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.framework import tensor_pb2

from tf_serving_platform.serving import codec
from tf_serving_platform.serving.errors import (
    HTTP_STATUS,
    ServingError,
    http_status,
    invalid_argument,
    unimplemented,
)

C = grpc.StatusCode
F32, F64 = np.float32, np.float64


def _obj(*values: object) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _error(fn, *args, **kwargs) -> ServingError:
    with pytest.raises(ServingError) as info:
        fn(*args, **kwargs)
    return info.value


def _bind(body: bytes, signature: dict[str, str]) -> dict[str, np.ndarray]:
    request = codec.decode_predict_json(body)
    return codec.bind_inputs(request.inputs, signature, request.row_format)


def _assert_arrays(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert list(actual) == list(expected)
    for name, want in expected.items():
        got = actual[name]
        assert got.dtype == want.dtype, name
        assert got.shape == want.shape, name
        assert np.array_equal(got, want, equal_nan=want.dtype.kind == "f"), name


# ---------------------------------------------------------------------------------------------
# serving.errors: ToHTTPStatusCode (util/status_util.cc)

HTTP_TABLE = [
    (C.OK, 200),
    (C.CANCELLED, 499),
    (C.UNKNOWN, 500),
    (C.INVALID_ARGUMENT, 400),
    (C.DEADLINE_EXCEEDED, 504),
    (C.NOT_FOUND, 404),
    (C.ALREADY_EXISTS, 409),
    (C.PERMISSION_DENIED, 403),
    (C.RESOURCE_EXHAUSTED, 429),
    (C.FAILED_PRECONDITION, 400),  # 400, not 412
    (C.ABORTED, 409),
    (C.OUT_OF_RANGE, 400),
    (C.UNIMPLEMENTED, 501),
    (C.INTERNAL, 500),
    (C.UNAVAILABLE, 503),
    (C.DATA_LOSS, 500),
    (C.UNAUTHENTICATED, 401),
]


@pytest.mark.parametrize(("code", "status"), HTTP_TABLE, ids=[c.name for c, _ in HTTP_TABLE])
def test_http_status_matches_tf_serving(code: grpc.StatusCode, status: int) -> None:
    assert http_status(code) == status
    assert ServingError(code, "m").http_status == status


def test_http_table_covers_every_grpc_code() -> None:
    assert set(HTTP_TABLE) == set(HTTP_STATUS.items()) and set(HTTP_STATUS) == set(C)


def test_unlisted_code_is_500_and_errors_carry_code_and_message() -> None:
    assert http_status(None) == 500  # type: ignore[arg-type]
    error = invalid_argument("bad")
    assert (error.code, error.message, str(error)) == (C.INVALID_ARGUMENT, "bad", "bad")
    assert unimplemented("no").code == C.UNIMPLEMENTED
    assert repr(error) == "ServingError(INVALID_ARGUMENT, 'bad')"


# ---------------------------------------------------------------------------------------------
# The dtype table


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        (1, "float"),
        ("DT_FLOAT", "float"),
        ("float", "float"),
        ("float32", "float"),
        (np.float64, "double"),
        ("half", "half"),
        (np.dtype("float16"), "half"),
        (object, "string"),
        (bytes, "string"),
        (ml_dtypes.bfloat16, "bfloat16"),
        (tf.int64, "int64"),
        (codec.BY_ENUM[10], "bool"),
    ],
)
def test_resolve_accepts_every_spelling(spec: object, name: str) -> None:
    assert codec.resolve(spec).name == name


@pytest.mark.parametrize("spec", [0, 99, "float128", "DT_NOPE", np.dtype("M8[s]"), True])
def test_resolve_rejects_unknown_dtypes(spec: object) -> None:
    assert _error(codec.resolve, spec).code == C.INVALID_ARGUMENT


@pytest.mark.parametrize("dt", list(codec.BY_ENUM.values()), ids=lambda d: d.name)
def test_dtype_table_agrees_with_tensorflow(dt: codec.TFDType) -> None:
    assert codec.BY_NAME[dt.name] is dt and codec.BY_NAME[f"DT_{dt.name.upper()}"] is dt
    tf_dtype = tf.dtypes.as_dtype(dt.enum)
    assert tf_dtype.as_datatype_enum == dt.enum
    if dt.numpy_name:  # quantized, resource and variant have no numpy equivalent here
        assert codec.BY_NUMPY[dt.numpy_name] is dt
        assert np.dtype(tf_dtype.as_numpy_dtype) == dt.numpy
    else:
        assert _error(lambda: dt.numpy).message == f"Tensors of type {dt.name} are not supported"


# ---------------------------------------------------------------------------------------------
# JSON parsing (FillPredictRequestFromJson's first step, rapidjson's messages)

PARSE_ERRORS = [
    (b"", "JSON Parse error: The document is empty"),
    (b"  \n", "JSON Parse error: The document is empty. at offset: 3"),
    (b"foo", "JSON Parse error: Invalid value. at offset: 0"),  # g3doc/api_rest.md's example
    (
        b'{"a": [1,2}',
        "JSON Parse error: Missing a comma or ']' after an array element. at offset: 10",
    ),
    (
        b'{"a": 1 "b": 2}',
        "JSON Parse error: Missing a comma or '}' after an object member. at offset: 8",
    ),
    (b'{"a" 1}', "JSON Parse error: Missing a colon after a name of object member. at offset: 5"),
    (b"{1: 2}", "JSON Parse error: Missing a name for object member. at offset: 1"),
    (b'{"a": "x', "JSON Parse error: Missing a closing quotation mark in string. at offset: 6"),
    (b'{"a": "\\q"}', "JSON Parse error: Invalid escape character in string. at offset: 7"),
    (b'{"a": "\xff"}', "JSON Parse error: Invalid encoding in string. at offset: 7"),
    (b"[1, 2]", "JSON Value: [1,2] Is not object"),
    (b'"s"', 'JSON Value: "s" Is not object'),
]


@pytest.mark.parametrize(("body", "message"), PARSE_ERRORS)
def test_parse_errors(body: bytes, message: str) -> None:
    error = _error(codec.decode_predict_json, body)
    assert (error.code, error.message) == (C.INVALID_ARGUMENT, message)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": 1}', {"a": 1}),
        (b'{"a": 1} trailing bytes', {"a": 1}),  # kParseStopWhenDoneFlag
        (bytearray(b'{"a": [1.5]}'), {"a": [1.5]}),
        ('{"a": "\u00e9"}', {"a": "\u00e9"}),
        (b'{"a": "Inf", "b": -Inf}', {"a": "Inf", "b": -math.inf}),  # tokens only outside strings
        (b'{"a": 18446744073709551616}', {"a": 1.8446744073709552e19}),  # > uint64: a double
    ],
)
def test_parse_json_object(body: bytes, expected: dict) -> None:
    assert codec.parse_json_object(body) == expected


def test_parse_reads_every_nan_and_infinity_token() -> None:
    doc = codec.parse_json_object(b'{"v": [NaN, -NaN, Infinity, -Infinity, Inf, -Inf]}')
    assert math.isnan(doc["v"][0]) and math.isnan(doc["v"][1])
    assert doc["v"][2:] == [math.inf, -math.inf, math.inf, -math.inf]


def test_long_documents_are_quoted_truncated() -> None:
    body = json.dumps({"instances": [1], "inputs": ["x" * 1000]}).encode()
    message = _error(codec.decode_predict_json, body).message
    assert message.startswith('JSON Value: {"instances":[1],"inputs":["xxx')
    assert message.endswith(
        "... Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "
    )


# ---------------------------------------------------------------------------------------------
# decode_predict_json: structure (FillPredictRequestFromJson)

DECODE_ERRORS = [
    (
        b'{"signature_name": 5, "instances": [1]}',
        'JSON Value: {"signature_name":5,"instances":[1]} not formatted correctly. '
        "'signature_name' key must be a string value.",
    ),
    (
        b'{"instances": [1], "inputs": [1]}',
        'JSON Value: {"instances":[1],"inputs":[1]} Not formatted correctly expecting only one '
        "of 'inputs' or 'instances' keys to exist ",
    ),
    (b'{"foo": 1}', "Missing 'inputs' or 'instances' key"),
    (
        b'{"instances": 1}',
        "JSON Value: {\"instances\":1} Expecting 'instances' to be an list/array",
    ),
    (b'{"instances": []}', "JSON Value: {\"instances\":[]} No values in 'instances' array"),
    (b'{"instances": [{"a": 1}, [1]]}', "Expecting object but got list at item 1 of input list"),
    (
        b'{"instances": [[1], {"a": 1}]}',
        "Expecting value/list but got object at item 1 of input list",
    ),
    (
        b'{"instances": [{"a": 1}, {"b": 1}]}',
        "Failed to process element: 1 of 'instances' list. JSON object: {\"b\":1} keys must be "
        "equal to: a",
    ),
    # Ragged instances: each element is one tensor; sizes then shapes must agree.
    (
        b'{"instances": [[1,2],[3,4],[5,6,7]]}',
        "Failed to process element: 2 of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting tensor size: 2 but got: 3",
    ),
    (
        b'{"instances": [[1,2],[3,4],[[5,6]]]}',
        "Failed to process element: 2 of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting shape [2] but got: [1,2]",
    ),
    (
        b'{"instances": [[[1,2],[3]]]}',
        "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
        "Encountered list at unexpected size: 1 at level: 1 expected size: 2",
    ),
    (
        b'{"instances": [{"a": [1], "b": 2}, {"a": [1, 2], "b": 3}]}',
        "Failed to process element: 1 key: a of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting tensor size: 1 but got: 2",
    ),
    # Ragged columnar tensors: FillTensorProto's messages, unwrapped.
    (
        b'{"inputs": [[1,2],[3]]}',
        "Encountered list at unexpected size: 1 at level: 1 expected size: 2",
    ),
    (b'{"inputs": [1, [1]]}', "Encountered list at unexpected level: 1 expected < 1"),
    (
        b'{"inputs": {"x": [[1], 2]}}',
        "JSON Value: 2 found at incorrect level: 2 in the JSON DOM. Expected at level: 2",
    ),
]


@pytest.mark.parametrize(("body", "message"), DECODE_ERRORS)
def test_decode_errors(body: bytes, message: str) -> None:
    error = _error(codec.decode_predict_json, body)
    assert (error.code, error.message) == (C.INVALID_ARGUMENT, message)


DECODED = [
    # Leaves keep their JSON type until the signature is applied.
    (b'{"instances": [[1,2],[3,4],[5,6]]}', np.array([[1, 2], [3, 4], [5, 6]]), True),
    (b'{"instances": [1.5, 2.5]}', np.array([1.5, 2.5]), True),
    (b'{"instances": [true, false]}', np.array([True, False]), True),
    (b'{"inputs": [[[1,2],[3,4],[5,6]]]}', np.array([[[1, 2], [3, 4], [5, 6]]]), False),
    (b'{"inputs": 5}', np.array(5), False),
    (b'{"inputs": [18446744073709551615]}', np.array([2**64 - 1], np.uint64), False),
    (b'{"inputs": ["a", "b"]}', _obj("a", "b"), False),
    (b'{"inputs": [1, 2.5]}', _obj(1, 2.5), False),  # mixed: coerce names the bad leaf
    # {"b64": ...} -> bytes; at the top of an instance it is a value, not a name.
    (b'{"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]}', _obj(b"hello", b"world"), True),
    (b'{"inputs": {"b64": "aGVsbG8"}}', np.array(b"hello", dtype=object), False),  # no padding
    (b'{"inputs": []}', np.array([], dtype=object), False),
]


@pytest.mark.parametrize(("body", "expected", "row_format"), DECODED)
def test_decode_unnamed(body: bytes, expected: np.ndarray, row_format: bool) -> None:
    request = codec.decode_predict_json(body)
    assert request.signature_name is None and request.row_format is row_format
    assert isinstance(request.inputs, np.ndarray)
    _assert_arrays({"x": request.inputs}, {"x": expected})


def test_decode_named_rows_and_columns() -> None:
    rows = codec.decode_predict_json(
        b'{"signature_name": "s", "instances": [{"i": [[1,2]], "s": ["foo"], "f": [1.0, NaN]},'
        b' {"i": [[3,4]], "s": ["bar"], "f": [2.0, Infinity]}]}'
    )
    assert rows.signature_name == "s" and rows.row_format
    _assert_arrays(
        rows.inputs,
        {
            "i": np.array([[[1, 2]], [[3, 4]]]),
            "s": np.array([["foo"], ["bar"]], dtype=object),
            "f": np.array([[1.0, np.nan], [2.0, np.inf]]),
        },
    )
    columns = codec.decode_predict_json(b'{"inputs": {"a": [1, 2, 3], "b": {"b64": "aGk="}}}')
    assert not columns.row_format
    _assert_arrays(columns.inputs, {"a": np.array([1, 2, 3]), "b": np.array(b"hi", dtype=object)})


# ---------------------------------------------------------------------------------------------
# bind_inputs / coerce_to_dtype: the signature's names and dtypes (AddValueToTensor)

BOUND = [
    (b'{"instances": [[1,2],[3,4]]}', {"x": "int32"}, {"x": np.array([[1, 2], [3, 4]], np.int32)}),
    # DT_FLOAT accepts ints; overflow -> inf; precision loss accepted (AddValueToTensor).
    (
        b'{"instances": [1, 2.0, 5.003, 1e39, -1e39, 1435774380]}',
        {"x": "float"},
        {"x": np.array([1, 2, 5.003, np.inf, -np.inf, 1435774380], F32)},
    ),
    (
        b'{"inputs": [NaN, Infinity, -Inf]}',
        {"x": "double"},
        {"x": np.array([np.nan, np.inf, -np.inf])},
    ),
    (b'{"inputs": [300, -129]}', {"x": "int8"}, {"x": np.array([44, 127], np.int8)}),  # TF casts
    (b'{"inputs": [9223372036854775807]}', {"x": "int64"}, {"x": np.array([2**63 - 1], np.int64)}),
    (b'{"inputs": [4294967295]}', {"x": "uint32"}, {"x": np.array([2**32 - 1], np.uint32)}),
    (
        b'{"inputs": [18446744073709551615]}',
        {"x": "uint64"},
        {"x": np.array([2**64 - 1], np.uint64)},
    ),
    (b'{"inputs": [true]}', {"x": "bool"}, {"x": np.array([True])}),
    (
        b'{"instances": ["h\\u00e9", {"b64": "/w=="}]}',
        {"x": "string"},
        {"x": _obj("h\u00e9".encode(), b"\xff")},
    ),
    (b'{"inputs": []}', {"x": "half"}, {"x": np.array([], np.float16)}),  # no value to convert
    # Named inputs: extra columnar keys are ignored; row objects follow the JSON key order.
    (
        b'{"inputs": {"b": [1.5], "a": [1], "zzz": "ignored"}}',
        {"a": "int64", "b": "float"},
        {"a": np.array([1], np.int64), "b": np.array([1.5], F32)},
    ),
    (
        b'{"instances": [{"b": 1.5, "a": 1}, {"b": 2, "a": 2}]}',
        {"a": "int64", "b": "double"},
        {"b": np.array([1.5, 2.0]), "a": np.array([1, 2], np.int64)},
    ),
    # A single-input signature also takes the named form.
    (b'{"instances": [{"x": [1]}]}', {"x": "int32"}, {"x": np.array([[1]], np.int32)}),
]


@pytest.mark.parametrize(("body", "signature", "expected"), BOUND)
def test_bind_inputs(body: bytes, signature: dict[str, str], expected: dict) -> None:
    _assert_arrays(_bind(body, signature), expected)


BIND_ERRORS = [
    (
        b'{"instances": ["x"]}',
        {"x": "float"},
        "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
        'JSON Value: "x" Type: String is not of expected type: float',  # api_rest.md's example
    ),
    (
        b'{"inputs": ["x"]}',
        {"x": "float"},
        'JSON Value: "x" Type: String is not of expected type: float',
    ),
    (
        b'{"inputs": [1.0]}',
        {"x": "int32"},
        "JSON Value: 1.0 Type: Number is not of expected type: int32",
    ),
    (
        b'{"instances": [1, 2.5]}',
        {"x": "int64"},
        "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
        "JSON Value: 2.5 Type: Number is not of expected type: int64",
    ),
    (
        b'{"instances": [[1, 2], [3, 3000000000]]}',
        {"x": "int32"},
        "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
        "JSON Value: 3000000000 Type: Number is not of expected type: int32",
    ),
    (
        b'{"inputs": [-1]}',
        {"x": "uint32"},
        "JSON Value: -1 Type: Number is not of expected type: uint32",
    ),
    (
        b'{"inputs": [18446744073709551616]}',
        {"x": "uint64"},
        "JSON Value: 1.84467441e+19 Type: Number is not of expected type: uint64",  # a double
    ),
    (
        b'{"inputs": [0.1234567891]}',
        {"x": "int64"},
        "JSON Value: 0.123456791 Type: Number is not of expected type: int64",
    ),
    (b'{"inputs": [1]}', {"x": "bool"}, "JSON Value: 1 Type: Number is not of expected type: bool"),
    (
        b'{"inputs": [true, 0]}',
        {"x": "bool"},
        "JSON Value: 0 Type: Number is not of expected type: bool",
    ),
    (
        b'{"inputs": [1, false]}',
        {"x": "float"},
        "JSON Value: false Type: False is not of expected type: float",
    ),
    (
        b'{"inputs": [null]}',
        {"x": "double"},
        "JSON Value: null Type: Null is not of expected type: double",
    ),
    (
        b'{"inputs": ["a", 1]}',
        {"x": "string"},
        "JSON Value: 1 Type: Number is not of expected type: string",
    ),
    (
        b'{"inputs": [["a"], [true]]}',
        {"x": "string"},
        "JSON Value: true Type: True is not of expected type: string",
    ),
    # b64
    (
        b'{"inputs": {"b64": "aGVsbG8="}}',
        {"x": "float"},
        'JSON Value: {"b64":"aGVsbG8="} Type: Object is not of expected type: float',
    ),
    (b'{"inputs": [{"b64": "!!!!"}]}', {"x": "string"}, "Unable to base64 decode"),
    (
        b'{"inputs": [{"b64": "aGk=", "x": 1}]}',
        {"x": "string"},
        'JSON Value: {"b64":"aGk=","x":1} not formatted correctly for base64 data',
    ),
    (
        b'{"inputs": [{"b64": 7}]}',
        {"x": "string"},
        'JSON Value: {"b64":7} not formatted correctly for base64 data',
    ),
    # Names
    (
        b'{"instances": [1]}',
        {"a": "float", "b": "float"},
        "instances is a plain list, but expecting list of objects as multiple input tensors "
        "required as per tensorinfo_map",
    ),
    (
        b'{"inputs": [1]}',
        {"a": "float", "b": "float"},
        "inputs is a plain value/list, but expecting an object as multiple input tensors "
        "required as per tensorinfo_map",
    ),
    (
        b'{"inputs": {"a": [1]}}',
        {"a": "float", "b": "float"},
        "Missing named input: b in 'inputs' object.",
    ),
    (
        b'{"instances": [{"a": 1}]}',
        {"a": "float", "b": "float"},
        "Failed to process element: 0 of 'instances' list. JSON object: {\"a\":1} keys must be "
        "equal to: a,b",
    ),
    (
        b'{"instances": [{"a": 1, "c": 2}]}',
        {"a": "float", "b": "float"},
        "Failed to process element: 0 key: c of 'instances' list. Error: INVALID_ARGUMENT: "
        "JSON object: does not have named input: c",
    ),
    (
        b'{"instances": [{"a": 1, "b": 1}, {"a": 2, "b": "s"}]}',
        {"a": "float", "b": "float"},
        "Failed to process element: 1 key: b of 'instances' list. Error: INVALID_ARGUMENT: "
        'JSON Value: "s" Type: String is not of expected type: float',
    ),
    (
        b'{"instances": [[1.5]]}',
        {"x": "half"},
        "Failed to process element: 0 of 'instances' list. Error: UNIMPLEMENTED: "
        "Conversion of JSON Value: 1.5 to type: half",
    ),
]


@pytest.mark.parametrize(("body", "signature", "message"), BIND_ERRORS)
def test_bind_errors(body: bytes, signature: dict[str, str], message: str) -> None:
    error = _error(_bind, body, signature)
    assert (error.code, error.message) == (C.INVALID_ARGUMENT, message)


@pytest.mark.parametrize("dtype", ["half", "bfloat16", "complex64", "uint16", "qint8"])
def test_dtypes_json_cannot_carry_are_unimplemented(dtype: str) -> None:
    # AddValueToTensor: UNIMPLEMENTED -> HTTP 501
    error = _error(_bind, b'{"inputs": [1]}', {"x": dtype})
    assert (error.code, error.http_status) == (C.UNIMPLEMENTED, 501)
    assert error.message == f"Conversion of JSON Value: 1 to type: {dtype}"


@pytest.mark.parametrize(
    ("value", "dtype", "expected"),
    [
        (np.array([1, 2]), np.float32, np.array([1, 2], F32)),
        (np.array(["a", "b"]), "string", _obj(b"a", b"b")),
        (np.array([b"a"]), 7, _obj(b"a")),
        (np.array([[True]]), tf.bool, np.array([[True]])),
        (_obj(1, 2), "int16", np.array([1, 2], np.int16)),
    ],
)
def test_coerce_to_dtype(value: np.ndarray, dtype: object, expected: np.ndarray) -> None:
    _assert_arrays({"x": codec.coerce_to_dtype(value, dtype)}, {"x": expected})


def test_coerce_names_the_key_in_row_format() -> None:
    error = _error(codec.coerce_to_dtype, np.array([[1.0], [2.5]]), "int32", "k", row_format=True)
    assert error.message == (
        "Failed to process element: 0 key: k of 'instances' list. Error: INVALID_ARGUMENT: "
        "JSON Value: 1.0 Type: Number is not of expected type: int32"
    )


# ---------------------------------------------------------------------------------------------
# encode_predict_json (MakeJsonFromTensors)

ENCODED = [
    ({"y": np.array([2.5, 3.0, 4.5], F32)}, True, {"predictions": [2.5, 3.0, 4.5]}),
    ({"y": np.array([[1, 2], [3, 4]], np.int64)}, True, {"predictions": [[1, 2], [3, 4]]}),
    (
        {"a": np.array([1, 2], np.int8), "b": np.array([[True], [False]])},
        True,
        {"predictions": [{"a": 1, "b": [True]}, {"a": 2, "b": [False]}]},
    ),
    ({"y": np.zeros((0, 3), F32)}, True, {"predictions": []}),
    ({"y": np.array([[1.5]], F64)}, False, {"outputs": [[1.5]]}),
    ({"y": np.array(7, np.uint32)}, False, {"outputs": 7}),  # rank 0: a bare value
    (
        {"a": np.array([1], np.uint64), "b": np.array(2.5, F32)},
        False,
        {"outputs": {"a": [1], "b": 2.5}},
    ),
    # Strings: `_bytes` aliases are base64, others UTF-8 text.
    (
        {"label": _obj(b"cat", "d\u00f6g".encode()), "img_bytes": _obj(b"\xff\x00", b"")},
        True,
        {
            "predictions": [
                {"label": "cat", "img_bytes": {"b64": "/wA="}},
                {"label": "d\u00f6g", "img_bytes": {"b64": ""}},
            ]
        },
    ),
    (
        {"s": np.array(["x"]), "s_bytes": np.array([b"x"])},
        False,
        {"outputs": {"s": ["x"], "s_bytes": [{"b64": "eA=="}]}},
    ),
    ({"s": _obj(b"\xff")}, False, {"outputs": ["\ufffd"]}),
    ({"y": np.array([[1, 2], [3, 4]], np.int32)[:, ::-1]}, False, {"outputs": [[2, 1], [4, 3]]}),
]


@pytest.mark.parametrize(("outputs", "row_format", "expected"), ENCODED)
def test_encode_predict_json(outputs: dict, row_format: bool, expected: dict) -> None:
    assert json.loads(codec.encode_predict_json(outputs, row_format)) == expected


@pytest.mark.parametrize(
    ("outputs", "row_format", "text"),
    [
        (
            {"y": np.array([[1 / 3, 2], [np.nan, -np.inf]], F32)},
            True,
            b'{"predictions":[[0.333333343,2.0],[NaN,-Infinity]]}',  # WriteDecimal: not 0.33333334
        ),
        (
            {"a": np.array([np.inf, 1.0]), "b": np.array([[np.nan], [-np.inf]], F32)},
            True,
            b'{"predictions":[{"a":Infinity,"b":[NaN]},{"a":1.0,"b":[-Infinity]}]}',
        ),
        (
            {"a": np.array([np.inf, 1.0]), "b": np.array([[np.nan], [-np.inf]], F32)},
            False,
            b'{"outputs":{"a":[Infinity,1.0],"b":[[NaN],[-Infinity]]}}',
        ),
        (  # a string output holding "null" cannot be told from orjson's nulls
            {"s": _obj(b"null"), "n": np.array([np.nan, 0.1], F32)},
            False,
            b'{"outputs":{"s":["null"],"n":[NaN,0.1]}}',
        ),
    ],
)
def test_encode_writes_tf_serving_float_tokens(
    outputs: dict, row_format: bool, text: bytes
) -> None:
    assert codec.encode_predict_json(outputs, row_format) == text


ENCODE_ERRORS = [
    ({}, True, "Cannot convert empty tensor map to JSON"),
    ({"y": np.array(1.5, F32)}, True, "Tensor name: y has no shape information "),
    (
        {"a": np.zeros(2), "b": np.zeros(1)},
        True,
        "Tensor name: b has inconsistent batch size: 1 expecting: 2",
    ),
    ({"y": np.zeros(1, np.float16)}, False, "Failed to write JSON value for tensor type: half"),
    (
        {"y": np.zeros(1, np.complex64)},
        False,
        "Failed to write JSON value for tensor type: complex64",
    ),
    ({"y": np.zeros(1, np.uint16)}, True, "Failed to write JSON value for tensor type: uint16"),
    (
        {"y": np.zeros(1, ml_dtypes.bfloat16)},
        True,
        "Failed to write JSON value for tensor type: bfloat16",
    ),
]


@pytest.mark.parametrize(("outputs", "row_format", "message"), ENCODE_ERRORS)
def test_encode_errors(outputs: dict, row_format: bool, message: str) -> None:
    error = _error(codec.encode_predict_json, outputs, row_format)
    assert (error.code, error.message) == (C.INVALID_ARGUMENT, message)


@pytest.mark.parametrize(
    ("body", "signature"),
    [
        (b'{"instances": [[1.5, 2.0], [3.0, 4.25]]}', {"x": "float"}),
        (
            b'{"instances": [{"a": [1, 2], "b": "s"}, {"a": [3, 4], "b": "t"}]}',
            {"a": "int32", "b": "string"},
        ),
        (b'{"inputs": {"a": [[1, 2]], "b": [true]}}', {"a": "int64", "b": "bool"}),
        (b'{"inputs": [0.1, 1e-05, 9000000.0]}', {"x": "double"}),
    ],
)
def test_json_round_trip(body: bytes, signature: dict[str, str]) -> None:
    request = codec.decode_predict_json(body)
    inputs = codec.bind_inputs(request.inputs, signature, request.row_format)
    answer = json.loads(codec.encode_predict_json(inputs, request.row_format))
    sent = json.loads(body)
    assert answer == (
        {"predictions": sent["instances"]} if request.row_format else {"outputs": sent["inputs"]}
    )


@pytest.mark.parametrize(
    ("value", "single", "text"),
    [  # WriteDecimal
        (1 / 3, True, "0.333333343"),
        (1 / 3, False, "0.33333333333333331"),
        (3.0, True, "3.0"),
        (42.0, False, "42.0"),
        (9e6, True, "9e+06"),
        (3e-05, True, "3e-05"),
        (0.1, True, "0.1"),
        (-0.0, False, "-0.0"),
        (math.nan, True, "NaN"),
        (math.inf, False, "Infinity"),
        (-math.inf, True, "-Infinity"),
    ],
)
def test_format_decimal(value: float, single: bool, text: str) -> None:
    assert codec.format_decimal(value, single) == text


def test_float32_values_parse_back_like_tf_serving_text() -> None:
    rng = np.random.default_rng(7)
    values = rng.integers(0, 2**32, 20_000, dtype=np.uint64).astype(np.uint32).view(F32)
    powers = np.array([10.0**k for k in range(-40, 39)], F32)
    edges = np.concatenate([powers, np.nextafter(powers, 0), np.nextafter(powers, np.inf)])
    extra = F32([999999.5, 999999.4, 0.5, 2.5, 1e-45, 3.4028235e38, -7.0, 0.0])
    values = np.concatenate([values[np.isfinite(values)], edges, -edges, extra])
    expected = np.array([float(codec.format_decimal(v, single=True)) for v in values.tolist()])
    assert np.array_equal(codec.tf_float32_values(values), expected)
    # Small outputs (a few scores per request) take the one-by-one path: the same values.
    small = [codec.tf_float32_values(values[i:i + 10].reshape(2, 5))
             for i in range(0, len(values) - 10, 10)]
    assert np.array_equal(np.concatenate([s.reshape(-1) for s in small]),
                          expected[:len(small) * 10])


# ---------------------------------------------------------------------------------------------
# TensorProto <-> numpy (tensor_util, MakeTensorProto)

ARRAYS = [
    np.arange(6, dtype=F32).reshape(2, 3) / 7,
    np.array([1e300, -np.inf, np.nan], F64),
    np.array([[1, -2]], np.int32),
    np.array([255, 0], np.uint8),
    np.array([-32768, 7], np.int16),
    np.array([-128, 127], np.int8),
    np.array([2**63 - 1, -(2**63)], np.int64),
    np.array([True, False, True]),
    np.array([65535, 1], np.uint16),
    np.array([2**32 - 1], np.uint32),
    np.array([2**64 - 1], np.uint64),
    np.array([1.5, -2, 65504], np.float16),
    np.array([1.5, -2.25], ml_dtypes.bfloat16),
    np.array([1 + 2j, -3.5j], np.complex64),
    np.array([[1 + 2j], [3 - 4j]], np.complex128),
    _obj(b"a", b"\x00\xff", b""),
    np.array(3.25, F32),  # a scalar
    np.zeros((0, 4), np.int64),
]


@pytest.mark.parametrize("use_tensor_content", [True, False], ids=["tensor_content", "typed"])
@pytest.mark.parametrize("a", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_tensor_proto_round_trip(a: np.ndarray, use_tensor_content: bool) -> None:
    proto = codec.ndarray_to_tensor_proto(a, use_tensor_content=use_tensor_content)
    assert proto.dtype == codec.dtype_of_array(a).enum
    assert [dim.size for dim in proto.tensor_shape.dim] == list(a.shape)
    assert bool(proto.tensor_content) == (use_tensor_content and a.dtype != object and a.size > 0)
    for decoded in (codec.tensor_proto_to_ndarray(proto), tf.make_ndarray(proto)):
        assert decoded.dtype == a.dtype and decoded.shape == a.shape
        assert np.array_equal(decoded, a, equal_nan=a.dtype.kind in "fc")


@pytest.mark.parametrize("a", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_decodes_tensorflow_made_protos(a: np.ndarray) -> None:
    decoded = codec.tensor_proto_to_ndarray(tf.make_tensor_proto(a))
    assert decoded.dtype == a.dtype and np.array_equal(decoded, a, equal_nan=a.dtype.kind in "fc")


@pytest.mark.parametrize(
    ("field", "a", "values"),
    [  # TF Serving's gRPC responses use typed fields
        ("float_val", np.array([0.5, 2], F32), [0.5, 2.0]),
        ("double_val", np.array([0.1]), [0.1]),
        ("int_val", np.array([-1, 2], np.int8), [-1, 2]),
        ("int64_val", np.array([2**40]), [2**40]),
        ("bool_val", np.array([True, False]), [True, False]),
        ("half_val", np.array([1.0, -2.0], np.float16), [0x3C00, 0xC000]),
        ("scomplex_val", np.array([1 + 2j], np.complex64), [1.0, 2.0]),
        ("uint64_val", np.array([2**64 - 1], np.uint64), [2**64 - 1]),
        ("string_val", np.array(["\u00e9"]), ["\u00e9".encode()]),
    ],
)
def test_typed_fields_hold_the_values(field: str, a: np.ndarray, values: list) -> None:
    proto = codec.ndarray_to_tensor_proto(a, use_tensor_content=False)
    assert list(getattr(proto, field)) == values


@pytest.mark.parametrize(
    ("text", "expected"),
    [  # Tensor::FromProto: fewer values -> the last one repeats; none -> zeros
        (
            "dtype: DT_FLOAT tensor_shape { dim { size: 2 } dim { size: 3 } } float_val: 7",
            np.full((2, 3), 7, F32),
        ),
        (
            "dtype: DT_INT32 tensor_shape { dim { size: 4 } } int_val: 1 int_val: 2",
            np.array([1, 2, 2, 2], np.int32),
        ),
        ("dtype: DT_DOUBLE tensor_shape { dim { size: 2 } }", np.zeros(2)),
        ("dtype: DT_STRING tensor_shape { dim { size: 2 } } string_val: 'a'", _obj(b"a", b"a")),
        ("dtype: DT_INT64 tensor_shape { } int64_val: 5", np.array(5)),
    ],
)
def test_typed_fields_fill_the_shape_like_tensorflow(text: str, expected: np.ndarray) -> None:
    proto = text_format.Parse(text, tensor_pb2.TensorProto())
    _assert_arrays({"x": codec.tensor_proto_to_ndarray(proto)}, {"x": expected})
    assert np.array_equal(tf.make_ndarray(proto), expected)


def test_values_beyond_the_shape_are_ignored_like_tensorflow_cpp() -> None:
    # TensorFlow's C++ Tensor::FromProto copies the first values; its Python make_ndarray fails.
    text = "dtype: DT_BOOL tensor_shape { dim { size: 1 } } bool_val: true bool_val: false"
    proto = text_format.Parse(text, tensor_pb2.TensorProto())
    _assert_arrays({"x": codec.tensor_proto_to_ndarray(proto)}, {"x": np.array([True])})


PROTO_ERRORS = [
    ("dtype: DT_INVALID", "Unknown tensor dtype. Received: dtype=0"),
    (
        "dtype: DT_FLOAT tensor_shape { unknown_rank: true }",
        "Cannot decode a tensor of unknown rank",
    ),
    (
        "dtype: DT_FLOAT tensor_shape { dim { size: -1 } }",
        "Tensor shape has a negative dimension. Received: shape=(-1,)",
    ),
    (
        "dtype: DT_FLOAT tensor_shape { dim { size: 2 } } tensor_content: '\\000\\000\\000\\000'",
        "tensor_content holds 4 bytes but a float tensor of shape [2] needs 8",
    ),
    (
        "dtype: DT_STRING tensor_shape { } tensor_content: 'ab'",
        "DT_STRING tensors must carry their values in string_val",
    ),
    (
        "dtype: DT_COMPLEX64 tensor_shape { } scomplex_val: 1",
        "scomplex_val must hold (real, imaginary) pairs",
    ),
    ("dtype: DT_RESOURCE tensor_shape { }", "Tensors of type resource are not supported"),
]


@pytest.mark.parametrize(("text", "message"), PROTO_ERRORS)
def test_tensor_proto_errors(text: str, message: str) -> None:
    proto = text_format.Parse(text, tensor_pb2.TensorProto())
    error = _error(codec.tensor_proto_to_ndarray, proto)
    assert (error.code, error.message) == (C.INVALID_ARGUMENT, message)


def test_encoding_rejects_what_tensorflow_cannot_hold() -> None:
    assert _error(codec.ndarray_to_tensor_proto, np.zeros(1, "M8[s]")).code == C.INVALID_ARGUMENT
    error = _error(codec.ndarray_to_tensor_proto, _obj(b"a", 1))
    assert error.message == "String tensors hold bytes or str. Received: int"


def test_codec_imports_without_tensorflow() -> None:
    script = (
        "import sys, serving.codec; "
        "bad = [m for m in sys.modules if m.split('.')[0].startswith('tensorflow')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
