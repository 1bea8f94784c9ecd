"""The fast path for large tensors in JSON (``serving/codec/json_dense.py``): same answers as the
careful path, or none at all.

``decode_dense_predict_json`` must give, for every body it accepts, exactly what the careful path
(``parse_predict_json`` then ``decode_predict_document``) gives: the same signature name, format,
input names, dtypes, shapes and values. For every other body (errors included) it must answer
None, so that the careful path words the error. Checked on hand-picked bodies and on generated
ones (dense, ragged, mixed, with tokens only rapidjson reads, in any layout and whitespace).
"""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tf_serving_platform.serving.codec.json_decode import (
    decode_dense_predict_json,
    decode_predict_document,
    decode_predict_json,
    parse_predict_json,
)
from tf_serving_platform.serving.codec.json_dense import MIN_ARRAY_BYTES
from tf_serving_platform.serving.errors import ServingError

RNG = np.random.default_rng(7)
IMAGE = RNG.random((1, 32, 32, 3)).astype(np.float32)
PIXELS = (IMAGE * 255).astype(np.int64)


def careful(body: bytes):
    """What the careful path answers: the request, or the error."""
    try:
        return decode_predict_document(parse_predict_json(body))
    except ServingError as error:
        return error


def assert_same_request(fast, slow) -> None:
    assert not isinstance(slow, ServingError), slow
    assert (fast.signature_name, fast.row_format) == (slow.signature_name, slow.row_format)
    if isinstance(slow.inputs, np.ndarray):
        fast_inputs, slow_inputs = {"": fast.inputs}, {"": slow.inputs}
    else:
        fast_inputs, slow_inputs = fast.inputs, slow.inputs
    assert list(fast_inputs) == list(slow_inputs)
    for name, expected in slow_inputs.items():
        got = fast_inputs[name]
        assert (got.dtype, got.shape) == (expected.dtype, expected.shape), name
        assert _values(got) == _values(expected), name


def _values(array: np.ndarray) -> list[str]:
    """Every element's repr: equal for equal values, NaN included, in any dtype."""
    return list(map(repr, array.reshape(-1).tolist()))


def assert_fast(body: bytes) -> None:
    """The fast path reads ``body`` and agrees with the careful path."""
    fast = decode_dense_predict_json(body)
    assert fast is not None, "the fast path declined a body it should read"
    assert_same_request(fast, careful(body))


def assert_declined(body: bytes) -> None:
    """The fast path leaves ``body`` to the careful path, which answers as it always did."""
    assert decode_dense_predict_json(body) is None
    slow = careful(body)
    if isinstance(slow, ServingError):
        with pytest.raises(ServingError) as raised:
            decode_predict_json(body)
        assert (raised.value.code, raised.value.message) == (slow.code, slow.message)
    else:
        assert_same_request(decode_predict_json(body), slow)


def dumps(document, pretty: bool = False) -> bytes:
    return json.dumps(document, indent=2 if pretty else None).encode()


@pytest.mark.parametrize("document", [
    {"instances": IMAGE.tolist()},
    {"instances": PIXELS.tolist()},
    {"instances": (PIXELS - 128).tolist(), "signature_name": "serving_default"},
    {"signature_name": "predict", "inputs": IMAGE.tolist()},
    {"inputs": {"image": IMAGE.tolist(), "scale": [0.5], "label": "cat"}},
    {"instances": [{"image": PIXELS[0, i:i + 8].tolist(), "id": i} for i in (0, 8, 16)]},
    {"instances": [{"image": IMAGE[0].tolist()}, {"image": IMAGE[0].tolist()}]},
    {"instances": (IMAGE * 1e-6).tolist()},  # exponents: 1.3e-07, and 1e-06 without a dot
    {"instances": [[2**63 + i for i in range(400)]]},  # beyond int64: uint64, as orjson reads
    {"instances": IMAGE.tolist(), "meta": {"trace": IMAGE[0, 0].tolist()}},  # keys TF ignores
    {"inputs": {"b64": PIXELS.tolist()}},  # an input named b64, not base64 bytes
], ids=["floats", "ints", "negative", "columns", "named-columns", "named-rows", "stacked-rows",
        "exponents", "uint64", "extra-key", "b64-name"])
@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "indented"])
def test_fast_path_reads_large_tensors_as_the_careful_path_does(document, pretty):
    assert_fast(dumps(document, pretty))


def test_fast_path_decodes_an_image_without_python_floats():
    request = decode_dense_predict_json(orjson.dumps({"instances": IMAGE.tolist()}))
    assert request.inputs.dtype == np.float64 and request.inputs.shape == (1, 32, 32, 3)
    assert np.array_equal(request.inputs.astype(np.float32), IMAGE)


def _ragged_same_count() -> list:
    rows = PIXELS.tolist()
    rows[0][0][0].append(rows[0][0][1].pop())  # one row longer, the next shorter: same count
    return rows


@pytest.mark.parametrize("body", [
    dumps({"instances": _ragged_same_count()}),
    dumps({"instances": [[1.5] + PIXELS[0, 0, 0].tolist() * 200]}),  # integers and decimals
    dumps({"instances": PIXELS.tolist()}).replace(b"128", b"NaN", 1),  # a rapidjson token
    dumps({"instances": PIXELS.tolist()}).replace(b"12", b"true", 1),
    dumps({"instances": PIXELS.tolist()}).replace(b"12", b"012", 1),  # not a JSON number
    dumps({"instances": PIXELS.tolist()}).replace(b"]]", b"]]]", 1),
    dumps({"instances": PIXELS.tolist()}) + b" trailing bytes",
    dumps({"instances": PIXELS.tolist(), "signature_name": 7}),
    dumps({"instances": PIXELS.tolist(), "inputs": PIXELS.tolist()}),
    dumps({"instances": PIXELS.tolist(), "signature_name": "a\\nb"}),  # an escape: careful
    dumps({"instances": [[1e400] + [1.5] * 600]}),
    dumps({"instances": [[2**64] + list(range(600))]}),  # beyond uint64: a double in orjson
    dumps({"instances": [[-1, 2**64 - 1] + list(range(600))]}),
    dumps({"instances": [{"a": PIXELS[0].tolist()}, {"a": IMAGE[0].tolist()}]}),
    dumps({"instances": [{"a": PIXELS[0].tolist()}, {"a": [1, 2]}]}),
    dumps({"instances": [{"a": PIXELS[0].tolist()}, {"b": PIXELS[0].tolist()}]}),
    dumps({"instances": ["x", PIXELS.tolist()]}),
    dumps({"signature_name": PIXELS.tolist(), "inputs": [1]}),
    dumps({"other": PIXELS.tolist()}),
    dumps([PIXELS.tolist()]),
    dumps({"instances": [[[] for _ in range(600)]]}),
    dumps({"instances": PIXELS.tolist()})[:-3],  # cut short
    b'{"instances": ' + b"[" * 1500 + b"1" + b"]" * 1500 + b', "x": ' + dumps(PIXELS.tolist())
    + b"}",
], ids=["ragged", "mixed", "nan", "bool", "leading-zero", "unbalanced", "trailing",
        "signature-type",
        "both-keys", "escape", "overflow", "beyond-uint64", "negative-and-uint64", "rows-differ",
        "rows-ragged", "rows-keys", "in-a-list", "signature-array", "no-tensors",
        "not-an-object", "empty-leaves", "truncated", "deep"])
def test_fast_path_leaves_every_other_body_to_the_careful_path(body):
    assert len(body) >= MIN_ARRAY_BYTES
    assert_declined(body)


DENSE = settings(max_examples=150, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SHAPES = st.lists(st.integers(1, 6), min_size=1, max_size=4).map(lambda s: [40] + s)
LEAF_KINDS = st.sampled_from(["int", "float", "exponent", "uint64", "negative"])
DAMAGE = st.sampled_from([None, None, "ragged", "mixed", "null", "nan", "short", "deep"])


def _leaves(kind: str, size: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    if kind == "int":
        return rng.integers(0, 256, size).tolist()
    if kind == "negative":
        return rng.integers(-(2**62), 2**62, size).tolist()
    if kind == "uint64":
        return (rng.integers(0, 2**62, size).astype(np.uint64) + np.uint64(2**63)).tolist()
    scale = 1e-9 if kind == "exponent" else 1.0
    return (rng.standard_normal(size) * scale).tolist()


def _damaged(tensor: list, damage: str | None) -> list:
    leaf_list = tensor
    while isinstance(leaf_list[0], list):
        leaf_list = leaf_list[-1]
    if damage == "ragged":
        leaf_list.pop()
    elif damage == "mixed":
        leaf_list[0] = 1 if isinstance(leaf_list[0], float) else 1.5
    elif damage in ("null", "nan"):
        leaf_list[-1] = None if damage == "null" else float("nan")
    elif damage == "short":
        tensor.pop()
    elif damage == "deep":
        leaf_list[0] = [leaf_list[0]]
    return tensor


@st.composite
def dense_bodies(draw) -> bytes:
    shape, kind = draw(SHAPES), draw(LEAF_KINDS)
    seed = draw(st.integers(0, 2**32 - 1))
    tensors = []
    for _ in range(draw(st.integers(1, 2))):
        flat = _leaves(kind, int(np.prod(shape)), seed)
        tensor = np.array(flat, dtype=object).reshape(shape).tolist()
        tensors.append(_damaged(tensor, draw(DAMAGE)))
    layout = draw(st.sampled_from(["instances", "inputs", "named-inputs", "named-rows"]))
    if layout in ("instances", "inputs"):
        document = {layout: tensors[0]}
    elif layout == "named-inputs":
        document = {"inputs": {f"t{i}": tensor for i, tensor in enumerate(tensors)}}
    else:
        document = {"instances": [{"t": tensor} for tensor in tensors]}
    if draw(st.booleans()):
        document["signature_name"] = draw(st.sampled_from(["serving_default", "", "other"]))
    indent = draw(st.sampled_from([None, 0, 1, "\t"]))
    separators = draw(st.sampled_from([None, (",", ":"), (" , ", " : ")]))
    return json.dumps(document, indent=indent, separators=separators).encode()


@DENSE
@given(body=dense_bodies())
def test_generated_bodies_fast_or_declined_never_different(body):
    fast = decode_dense_predict_json(body)
    if fast is None:
        assert_declined(body)
    else:
        assert_same_request(fast, careful(body))
