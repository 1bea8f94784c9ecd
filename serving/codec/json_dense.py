"""Large numeric arrays in a JSON body -> numpy directly, without a Python object per number.

An image as JSON is 150,528 numbers: orjson makes a Python float of each and numpy then
reads them back, about 25 ms. ``parse_dense_object`` cuts out each large array of numbers
that is the value of a key, has simdjson parse it straight into a buffer of doubles or
integers, checks that it is dense (every row the same length, found by comparing the
brackets and commas with those of its shape), and parses the small rest with orjson.

It reads only well-formed bodies and only arrays whose numbers are all integers or all
decimals (what ``values.json_to_array`` turns into int64/uint64 or float64). For
anything else it leaves the text to orjson, or answers None: the careful parser then reads
the body and words any error as TensorFlow Serving does.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import orjson
import simdjson

__all__ = ["MIN_ARRAY_BYTES", "parse_dense_object"]

MIN_ARRAY_BYTES = 2048
"""Arrays of fewer bytes stay with orjson: below this, cutting them out costs more."""

_WHITESPACE = b" \t\r\n"
_NOT_STRUCTURE = b"0123456789+-" + _WHITESPACE  # what is left: [ ] , and the marks . e E
_MARKS_AS_DOTS = bytes.maketrans(b"eE", b"..")  # then a decimal leaves "." or ".." (1.5e-7)
_SENTINEL_PREFIX = "\x00"  # a JSON string holds U+0000 only escaped: never in a body read here
_parsers = threading.local()


def _structure(shape: list[int], number: bytes) -> bytes:
    """The text of a dense array of ``shape`` with each number written ``number``, no spaces."""
    text = b"[" + b",".join([number] * shape[-1]) + b"]"
    for size in reversed(shape[:-1]):
        text = b"[" + b",".join([text] * size) + b"]"
    return text


def _parse(text: bytes) -> Any:
    """simdjson's document of ``text``, with this thread's parser (its buffers are reused)."""
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = simdjson.Parser()
    try:
        return parser.parse(text)
    except RuntimeError:
        # A document of the last parse is still referenced (a new parser then parses), or
        # the text nests too deep (the new parser raises it again, for the caller).
        _parsers.parser = simdjson.Parser()
        return _parsers.parser.parse(text)


def _dense_array(text: bytes) -> np.ndarray | None:
    """``text`` (one JSON array) as int64/uint64/float64, or None when it is not a dense,
    non-empty array of only integers or only decimals."""
    try:
        root = _parse(text)
    except (ValueError, RuntimeError):  # not JSON (NaN, Infinity), or nested too deep
        return None
    shape, item = [], root
    while isinstance(item, simdjson.Array) and len(item):
        shape.append(len(item))
        item = item[0]
    if isinstance(item, simdjson.Array | simdjson.Object):
        return None  # an empty or object leaf: not a dense array of numbers
    # Dense with only integers: brackets and commas as the shape's. Only decimals: one mark
    # per number. (simdjson has checked each number's grammar.)
    structure = text.translate(None, _NOT_STRUCTURE)
    if structure == _structure(shape, b""):
        types = (("i", np.int64), ("u", np.uint64))
    elif structure.translate(_MARKS_AS_DOTS).replace(b"..", b".") == _structure(shape, b"."):
        types = (("d", np.float64),)
    else:
        return None  # ragged, or integers and decimals mixed (json_to_array keeps objects)
    for of_type, dtype in types:
        try:
            return np.frombuffer(root.as_buffer(of_type=of_type), dtype=dtype).reshape(shape)
        except (TypeError, ValueError):  # a leaf that is not a number, or out of range
            continue
    return None


def _cut_out(text: bytes, arrays: list[np.ndarray]) -> bytes:
    """``text`` (what lies between two string literals) with a large array that is a key's
    value replaced by a sentinel string naming its index in ``arrays``."""
    start = text.find(b"[")
    if start < 0 or text[:start].strip(_WHITESPACE) != b":":
        return text
    end = text.find(b"}", start)
    value = text[start:end if end >= 0 else len(text)].rstrip(_WHITESPACE + b",")
    array = _dense_array(value) if len(value) >= MIN_ARRAY_BYTES else None
    if array is None:
        return text
    arrays.append(array)
    sentinel = f'"\\u0000{len(arrays) - 1}"'.encode()
    return text[:start] + sentinel + text[start + len(value):]


def _outside_strings(body: bytes) -> list[tuple[int, int]]:
    """The (start, end) of the text outside string literals, for a body without escapes."""
    regions, start = [], 0
    while (opening := body.find(b'"', start)) >= 0:
        regions.append((start, opening))
        closing = body.find(b'"', opening + 1)
        if closing < 0:
            return regions  # unterminated: orjson refuses the body
        start = closing + 1
    return regions + [(start, len(body))]


def _restore(value: Any, arrays: list[np.ndarray]) -> Any:
    """``value`` with the sentinels replaced by their arrays."""
    if type(value) is str and value.startswith(_SENTINEL_PREFIX):
        return arrays[int(value[1:])]
    if type(value) is dict:
        return {key: _restore(item, arrays) for key, item in value.items()}
    if type(value) is list:
        return [_restore(item, arrays) for item in value]
    return value


def parse_dense_object(body: bytes | bytearray | memoryview) -> dict[str, Any] | None:
    """The JSON object of ``body``, with each large dense array of numbers that is the value of
    a key as a numpy array (int64, uint64 or float64, as ``json_to_array`` types it).

    Returns None when the body has no such array or is not one read here (a backslash in it,
    text orjson refuses, not an object): parse it the careful way.
    """
    body = bytes(body)
    if len(body) < MIN_ARRAY_BYTES or b"\\" in body:  # no escapes: `"` always opens or closes
        return None
    arrays: list[np.ndarray] = []
    pieces, done = [], 0
    for start, end in _outside_strings(body):
        if end - start >= MIN_ARRAY_BYTES:
            text = body[start:end]
            cut = _cut_out(text, arrays)
            if cut is not text:
                pieces += (body[done:start], cut)
                done = end
    if not arrays:
        return None
    pieces.append(body[done:])
    try:
        document = orjson.loads(b"".join(pieces))
    except orjson.JSONDecodeError:
        return None
    if type(document) is not dict:
        return None
    try:
        return _restore(document, arrays)
    except RecursionError:  # nesting orjson allows and Python's stack does not
        return None
