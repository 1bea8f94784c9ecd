"""Property-based fuzzing of the tensor codec (``serving/codec*.py``) with hypothesis.

Two kinds of properties:

* Robustness: whatever a client sends (JSON bodies, well-formed or mangled, with any signature
  dtypes; ``tf.Example`` JSON; TensorProtos with any dtype enum, shape, ``tensor_content`` and
  typed fields), the only exception out of the codec is ``ServingError`` with a 4xx code, and a
  decoded tensor has the shape and dtype it claims.
* Round trips: ndarray -> TensorProto -> ndarray is bit-exact for every dtype the codec supports
  (typed fields and ``tensor_content``), and ndarray -> response JSON -> request JSON -> ndarray
  preserves the values of every dtype JSON can carry.

Each property runs ~200 examples (no example database is written); the file takes well under 30 s.
"""

from __future__ import annotations

import json
import string

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tensorflow.core.framework import tensor_pb2

from tf_serving_platform.serving import codec
from tf_serving_platform.serving.codec.dtypes import BY_ENUM
from tf_serving_platform.serving.codec.examples import decode_examples_json
from tf_serving_platform.serving.codec.proto import MAX_TENSOR_BYTES
from tf_serving_platform.serving.errors import ServingError

FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

JSON_DTYPES = ["float", "double", "int32", "int16", "int8", "uint8", "int64", "uint32", "uint64",
               "bool", "string"]
OTHER_DTYPES = ["half", "bfloat16", "complex64", "complex128", "uint16"]
NAMES = ["x", "y", "a", "b", "x_bytes"]


def refused_as_client_error(error: ServingError) -> None:
    assert error.http_status < 500, error


# ---- JSON documents ---------------------------------------------------------------------------

LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
    st.builds(lambda s: {"b64": s},
              st.text(string.ascii_letters + string.digits + "+/=!", max_size=9)),
    st.builds(lambda v: {"b64": v}, st.none() | st.integers()),
)
JSON_VALUES = st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(NAMES) | st.text(max_size=3), inner, max_size=3), max_leaves=16)
# Dense tensors as nested lists, of the leaf types a JSON signature input accepts.
ARRAYS = st.one_of(
    hnp.arrays(hnp.floating_dtypes(sizes=64), hnp.array_shapes(min_dims=0, max_dims=3, max_side=3)),
    hnp.arrays(np.int64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=3)),
    hnp.arrays(np.bool_, hnp.array_shapes(min_dims=0, max_dims=2, max_side=3)),
    hnp.arrays(object, hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),
               elements=st.text(max_size=4)),
).map(lambda a: a.tolist())
TENSORS = ARRAYS | JSON_VALUES
ROWS = st.lists(TENSORS, min_size=1, max_size=4) | st.lists(
    st.dictionaries(st.sampled_from(NAMES), TENSORS, max_size=3), min_size=1, max_size=3)
DOCUMENTS = st.fixed_dictionaries({}, optional={
    "signature_name": st.text(max_size=4) | JSON_VALUES,
    "instances": ROWS | JSON_VALUES,
    "inputs": TENSORS | st.dictionaries(st.sampled_from(NAMES), TENSORS, max_size=3),
    "unknown": JSON_VALUES,
})
SIGNATURES = st.dictionaries(st.sampled_from(NAMES), st.sampled_from(JSON_DTYPES), min_size=1,
                             max_size=3)


@st.composite
def bodies(draw, documents=DOCUMENTS) -> bytes:
    """A document as JSON (NaN/Infinity tokens, escaped or raw text, lone surrogates) or as any
    JSON value at the top, sometimes truncated, spliced or garbled."""
    document = draw(documents | JSON_VALUES)
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    body = text.encode("utf-8", "surrogatepass")
    mutation = draw(st.sampled_from(["none", "none", "truncate", "insert", "delete", "flip"]))
    if mutation != "none" and body:
        at = draw(st.integers(0, len(body) - 1))
        if mutation == "truncate":
            body = body[:at]
        elif mutation == "insert":
            junk = draw(st.sampled_from([b"[", b"]", b"{", b"}", b",", b":", b'"', b"\\", b"NaN",
                                         b"-Inf", b"1e999", b"\xff", b"\x00", b"\\ud800"]))
            body = body[:at] + junk + body[at:]
        elif mutation == "delete":
            body = body[:at] + body[at + draw(st.integers(1, 4)):]
        else:
            body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1:]
    return body


@FUZZ
@given(body=bodies(), signature=SIGNATURES)
def test_json_predict_bodies_fail_only_as_client_errors(body, signature):
    try:
        request = codec.decode_predict_json(body)
        inputs = codec.bind_inputs(request.inputs, signature, request.row_format)
    except ServingError as e:
        refused_as_client_error(e)
        return
    assert set(inputs) == set(signature)
    for alias, dtype in signature.items():
        assert inputs[alias].dtype == codec.resolve(dtype).numpy


@FUZZ
@given(body=st.binary(max_size=64) | st.text(alphabet='[]{}",:.-+0123456789eENaInfity \\ub',
                                             max_size=40).map(str.encode))
def test_arbitrary_bytes_fail_only_as_client_errors(body):
    try:
        codec.decode_predict_json(body)
    except ServingError as e:
        refused_as_client_error(e)


SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
OBJECT_LEAVES = st.one_of(
    LEAVES, st.binary(max_size=4), st.text(alphabet=SURROGATES, max_size=2),
    st.floats(width=32), st.integers(2**63, 2**64 - 1),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
TYPED = hnp.arrays(
    st.one_of(hnp.boolean_dtypes(), hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(),
              hnp.floating_dtypes(), hnp.complex_number_dtypes(), hnp.unicode_string_dtypes(),
              hnp.byte_string_dtypes()),
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))


@st.composite
def object_arrays(draw) -> np.ndarray:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
    a = np.empty(shape, dtype=object)
    for index in np.ndindex(shape):
        a[index] = draw(OBJECT_LEAVES)
    return a


@FUZZ
@given(value=object_arrays() | TYPED, dtype=st.sampled_from(JSON_DTYPES + OTHER_DTYPES),
       name=st.none() | st.sampled_from(NAMES), row_format=st.booleans())
def test_coerce_to_dtype_fails_only_as_serving_error(value, dtype, name, row_format):
    try:
        out = codec.coerce_to_dtype(value, dtype, name, row_format=row_format)
    except ServingError as e:
        # UNIMPLEMENTED (501) is TensorFlow Serving's answer for dtypes JSON cannot carry.
        if dtype in JSON_DTYPES:
            refused_as_client_error(e)
        else:
            assert e.code.name in ("INVALID_ARGUMENT", "UNIMPLEMENTED"), e
        return
    assert out.shape == value.shape
    assert out.dtype == codec.resolve(dtype).numpy


FEATURES = st.dictionaries(st.text(max_size=3), JSON_VALUES, max_size=3)
EXAMPLE_DOCUMENTS = st.fixed_dictionaries({}, optional={
    "signature_name": st.text(max_size=4) | JSON_VALUES,
    "context": FEATURES | JSON_VALUES,
    "examples": st.lists(FEATURES | JSON_VALUES, max_size=3) | JSON_VALUES,
})


@FUZZ
@given(body=bodies(EXAMPLE_DOCUMENTS))
def test_json_examples_fail_only_as_client_errors(body):
    try:
        signature_name, model_input = decode_examples_json(body)
    except ServingError as e:
        refused_as_client_error(e)
        return
    assert signature_name is None or isinstance(signature_name, str)
    assert model_input.WhichOneof("kind") in ("example_list", "example_list_with_context")


# ---- TensorProto decoding ------------------------------------------------------------------------

HUGE_DIMS = [2**31, 2**40, 2**62, 2**63 - 1]
SHAPES = st.one_of(
    st.lists(st.integers(0, 4), max_size=4),
    st.lists(st.integers(0, 3) | st.sampled_from([-1, -(2**63), *HUGE_DIMS]), min_size=1,
             max_size=4),
    st.integers(60, 70).map(lambda n: [1] * n),
)
INT32 = st.integers(-(2**31), 2**31 - 1)
TYPED_FIELDS = {
    "float_val": st.floats(width=32), "double_val": st.floats(), "int_val": INT32,
    "int64_val": st.integers(-(2**63), 2**63 - 1), "uint32_val": st.integers(0, 2**32 - 1),
    "uint64_val": st.integers(0, 2**64 - 1), "bool_val": st.booleans(),
    "string_val": st.binary(max_size=5), "half_val": INT32, "scomplex_val": st.floats(width=32),
    "dcomplex_val": st.floats(),
}


@st.composite
def tensor_protos(draw):
    proto = tensor_pb2.TensorProto()
    proto.dtype = draw(st.sampled_from(sorted(BY_ENUM)) | st.integers(-(2**31), 2**31 - 1))
    shape = draw(SHAPES)
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    proto.tensor_shape.unknown_rank = draw(st.sampled_from([False, False, False, True]))
    for field in draw(st.lists(st.sampled_from(sorted(TYPED_FIELDS)), max_size=3, unique=True)):
        getattr(proto, field).extend(draw(st.lists(TYPED_FIELDS[field], max_size=6)))
    content = draw(st.sampled_from(["none", "random", "exact"]))
    dtype = BY_ENUM.get(proto.dtype)
    size = int(np.prod(shape, dtype=object)) if shape else 1
    if content == "random":
        proto.tensor_content = draw(st.binary(max_size=40))
    elif content == "exact" and dtype and dtype.numpy_name not in ("", "object") and \
            0 <= size <= 64:
        proto.tensor_content = draw(st.binary(min_size=size * dtype.numpy.itemsize,
                                              max_size=size * dtype.numpy.itemsize))
    return proto


@FUZZ
@given(proto=tensor_protos())
def test_tensor_protos_decode_or_fail_as_client_errors(proto):
    try:
        array = codec.tensor_proto_to_ndarray(proto)
    except ServingError as e:
        refused_as_client_error(e)
        return
    assert array.shape == tuple(d.size for d in proto.tensor_shape.dim)
    assert array.dtype == BY_ENUM[proto.dtype].numpy
    assert array.nbytes <= MAX_TENSOR_BYTES


# ---- round trips ---------------------------------------------------------------------------------

SHAPE = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
NUMERIC = ["float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "uint16",
           "uint32", "uint64", "bool", "complex64", "complex128"]


@st.composite
def any_arrays(draw) -> np.ndarray:
    """An array of any dtype the codec supports, with any bits (NaN payloads, -0.0...)."""
    kind = draw(st.sampled_from([*NUMERIC, "bfloat16", "string"]))
    shape = draw(SHAPE)
    if kind == "string":
        return draw(hnp.arrays(object, shape, elements=st.binary(max_size=6)))
    if kind == "bfloat16":
        return draw(hnp.arrays(np.uint16, shape)).view(ml_dtypes.bfloat16)
    dtype = np.dtype(kind)
    if dtype.kind in "fc":  # every bit pattern, as the wire may carry it
        bits = draw(hnp.arrays(np.dtype(f"u{dtype.itemsize // (2 if dtype.kind == 'c' else 1)}"),
                               shape + ((2,) if dtype.kind == "c" else ())))
        return bits.view(np.dtype(f"f{dtype.itemsize // (2 if dtype.kind == 'c' else 1)}")) \
            .view(dtype).reshape(shape)
    return draw(hnp.arrays(dtype, shape))


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype == object:
        return a.shape == b.shape and a.tolist() == b.tolist()
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@FUZZ
@given(array=any_arrays(), tensor_content=st.booleans())
def test_tensor_proto_round_trip_is_exact(array, tensor_content):
    proto = codec.ndarray_to_tensor_proto(array, use_tensor_content=tensor_content)
    wire = tensor_pb2.TensorProto.FromString(proto.SerializeToString())
    back = codec.tensor_proto_to_ndarray(wire)
    assert same_bits(back, array), (array, back)


JSON_ARRAYS = st.one_of(
    hnp.arrays(np.float32, SHAPE, elements=st.floats(width=32)),
    hnp.arrays(np.float64, SHAPE),
    *(hnp.arrays(np.dtype(t), SHAPE) for t in ("int8", "int16", "int32", "int64", "uint8",
                                               "uint32", "uint64", "bool")),
    hnp.arrays(object, SHAPE, elements=st.binary(max_size=6)),
    hnp.arrays(object, SHAPE, elements=st.text(alphabet=st.characters(exclude_categories=["Cs"]),
                                               max_size=4)),
)
REQUEST_KEYS = {b'{"outputs":': b'{"inputs":', b'{"predictions":': b'{"instances":'}


def same_values(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f":  # NaN where NaN was (JSON has one NaN), every other bit equal (-0.0)
        nan = np.isnan(a)
        return bool((nan == np.isnan(b)).all()) and a[~nan].tobytes() == b[~nan].tobytes()
    return a.tolist() == b.tolist()


@FUZZ
@given(array=JSON_ARRAYS.filter(lambda a: 0 not in a.shape), row_format=st.booleans(),
       bytes_alias=st.booleans())
def test_json_round_trip_preserves_values(array, row_format, bytes_alias):
    row_format = row_format and array.ndim > 0
    strings = array.dtype == object
    alias = "x_bytes" if strings and (bytes_alias or isinstance(array.flat[0], bytes)) else "x"
    response = codec.encode_predict_json({alias: array}, row_format)
    key, rest = response.split(b":", 1)
    request = REQUEST_KEYS[key + b":"] + rest  # the answer, sent back as a request
    decoded = codec.decode_predict_json(request)
    dtype = "string" if strings else codec.dtype_of_array(array).name
    back = codec.bind_inputs(decoded.inputs, {alias: dtype}, decoded.row_format)[alias]
    if strings:
        array = np.vectorize(lambda v: v if isinstance(v, bytes) else v.encode(),
                             otypes=[object])(array)
    assert same_values(back, array), (array, response, back)


@FUZZ
@given(array=any_arrays().filter(lambda a: a.dtype.name in
                                 ("float16", "bfloat16", "complex64", "complex128", "uint16")),
       row_format=st.booleans())
def test_json_refuses_dtypes_it_cannot_write(array, row_format):
    with pytest.raises(ServingError) as info:
        codec.encode_predict_json({"y": array}, row_format and array.ndim > 0)
    refused_as_client_error(info.value)
    assert "Failed to write JSON value for tensor type: " in info.value.message
