"""The Open Inference Protocol's tensor codec: every datatype both ways, in each encoding, and
the one-line errors a malformed tensor gets."""

from __future__ import annotations

import numpy as np
import pytest

from tf_serving_platform.serving.codec import v2 as codec_v2
from tf_serving_platform.serving.errors import ServingError

ARRAYS = {
    "BOOL": np.array([[True, False]]), "UINT8": np.array([[0, 255]], np.uint8),
    "UINT16": np.array([[1, 65535]], np.uint16), "UINT32": np.array([[1, 2**32 - 1]], np.uint32),
    "UINT64": np.array([[1, 2**64 - 1]], np.uint64), "INT8": np.array([[-128, 127]], np.int8),
    "INT16": np.array([[-3, 4]], np.int16), "INT32": np.array([[-(2**31), 2**31 - 1]], np.int32),
    "INT64": np.array([[-(2**63), 2**63 - 1]], np.int64),
    "FP16": np.array([[0.5, -2.0]], np.float16), "FP32": np.array([[1 / 3, -0.0]], np.float32),
    "FP64": np.array([[1 / 3, 1e-300]], np.float64),
    "BYTES": np.array([[b"caf\xc3\xa9", b"\x00\xff raw"]], dtype=object),
}


@pytest.mark.parametrize("datatype", list(ARRAYS))
def test_every_datatype_round_trips_in_binary(datatype):
    array = ARRAYS[datatype]
    assert codec_v2.datatype_of(array) == datatype
    back = codec_v2.from_raw("x", datatype, list(array.shape), codec_v2.to_raw(array))
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tolist() == array.tolist()


@pytest.mark.parametrize("datatype", [d for d in ARRAYS if d != "BYTES"])
def test_numbers_round_trip_as_json(datatype):
    array = ARRAYS[datatype]
    data = codec_v2.to_json(array)
    back = codec_v2.from_json("x", datatype, list(array.shape), np.asarray(data).tolist())
    assert back.dtype == array.dtype and back.tolist() == array.tolist()


def test_text_as_json_and_nested_data():
    back = codec_v2.from_json("t", "BYTES", [2, 1], [["ab"], ["é"]])
    assert back.tolist() == [[b"ab"], ["é".encode()]]
    assert codec_v2.to_json(back) == ["ab", "é"]


@pytest.mark.parametrize(("call", "fragment"), [
    (lambda: codec_v2.from_json("x", "FP32", [2], [1.0]), "needs 2 elements; data has 1"),
    (lambda: codec_v2.from_json("x", "INT32", [1], [1.5]), "data does not hold INT32"),
    (lambda: codec_v2.from_json("x", "BOOL", [1], [1]), "data does not hold BOOL"),
    (lambda: codec_v2.from_json("x", "FP32", [1], ["a"]), "data does not hold FP32"),
    (lambda: codec_v2.from_json("x", "INT8", [1], [300]), "data does not hold INT8"),
    (lambda: codec_v2.from_json("x", "COMPLEX", [1], [1]), "unsupported datatype 'COMPLEX'"),
    (lambda: codec_v2.from_json("x", "FP32", [-1], [1.0]), "non-negative integers"),
    (lambda: codec_v2.from_raw("x", "FP32", [2], b"\0" * 4), "4 bytes of binary data"),
    (lambda: codec_v2.from_raw("x", "BYTES", [1], b"\5\0\0\0ab"), "runs past the binary data"),
    (lambda: codec_v2.from_raw("x", "BYTES", [2], b"\1\0\0\0a"), "needs 2 elements"),
])
def test_malformed_tensors_are_invalid_argument(call, fragment):
    with pytest.raises(ServingError) as raised:
        call()
    assert raised.value.code.name == "INVALID_ARGUMENT" and fragment in raised.value.message
    assert "input 'x'" in raised.value.message


def test_typed_grpc_contents():
    from tritonclient.grpc import service_pb2

    contents = service_pb2.InferTensorContents(int64_contents=[1, -2, 3, 4])
    assert codec_v2.from_contents("x", "INT64", [2, 2], contents).tolist() == [[1, -2], [3, 4]]
    with pytest.raises(ServingError) as raised:
        codec_v2.from_contents("x", "FP16", [1], contents)
    assert "FP16 must be sent in raw_input_contents" in raised.value.message
