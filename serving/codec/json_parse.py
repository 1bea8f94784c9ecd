"""Request bodies -> JSON documents, with rapidjson's leniency and error texts.

TensorFlow Serving parses with rapidjson (``ParseJson`` in ``util/json_tensor.cc``):
``NaN``/``Inf``/``Infinity`` tokens are numbers and bytes after the document are ignored.
orjson parses ordinary bodies; the stdlib takes over only when orjson refuses one,
and its error messages are translated to rapidjson's.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from tf_serving_platform.serving.errors import ServingError, invalid_argument

__all__ = ["json_value_error", "parse_json_object"]

_MAX_DEBUG_BYTES = 256  # kMaxJsonDebugStringBytes: how much of a document an error quotes
_UINT64_MAX = 2**64 - 1
# rapidjson's parse-error texts for the stdlib's messages (`GetParseError_En`).
_PARSE_ERRORS = {
    "Expecting value": "Invalid value.",
    "Expecting property name enclosed in double quotes": "Missing a name for object member.",
    "Expecting ':' delimiter": "Missing a colon after a name of object member.",
    "Unterminated string starting at": "Missing a closing quotation mark in string.",
    "Invalid control character at": "Invalid encoding in string.",
    "Invalid \\escape": "Invalid escape character in string.",
    "Invalid \\uXXXX escape": "Incorrect hex digit after \\u escape in string.",
}
_COMMA_ERRORS = {
    "{": "Missing a comma or '}' after an object member.",
    "[": "Missing a comma or ']' after an array element.",
}
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_TOKENS = re.compile(_STRING + r"|(-?)(Infinity|Inf|NaN)")  # rapidjson's kParseNanAndInfFlag
_STRINGS = re.compile(_STRING)
# Inside a string literal: a surrogate pair, half of one (group 1), or any other escape.
_ESCAPES = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
                      r"|(\\u[dD][89a-fA-F][0-9a-fA-F]{2})|\\.")


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # rapidjson (and orjson) refuse what overflows a double
        raise invalid_argument("JSON Parse error: Number too big to be stored in double.")
    return value


def _parse_int(text: str) -> int | float:
    """rapidjson reads integers beyond int64/uint64 as doubles; so does orjson. (Beyond 20
    characters a literal is out of range: not given to int(), which refuses 4300 digits.)"""
    value = int(text) if len(text) <= 20 else None
    return value if value is not None and -(2**63) <= value <= _UINT64_MAX else _parse_float(text)


_LENIENT = json.JSONDecoder(parse_int=_parse_int)
# Slower (a Python call per decimal): only for text with a literal that may overflow a double.
_CHECKED = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float)
_EXPONENT = re.compile(r"[eE]\+?\d{3}")
_DIGITS_TO_0 = bytes.maketrans(b"123456789", b"000000000")


def _may_overflow(text: str) -> bool:
    """Whether a number in ``text`` may overflow a double (1.8e308): one with a 3-digit exponent,
    or with 210 digits in a row (times a 2-digit exponent)."""
    return _EXPONENT.search(text) is not None or \
        b"0" * 210 in text.encode("utf-8", "surrogatepass").translate(_DIGITS_TO_0)


def _normalize_token(match: re.Match[str]) -> str:
    if match.group(2) is None:
        return match.group(0)  # a string literal, left alone
    return "NaN" if match.group(2) == "NaN" else f"{match.group(1)}Infinity"


def _open_bracket(text: str, pos: int) -> str:
    """The innermost unclosed ``{`` or ``[`` before ``pos`` (error reporting only)."""
    stack: list[str] = []
    for bracket in re.findall(r"[\[\]{}]", _STRINGS.sub("", text[:pos])):
        if bracket in "[{":
            stack.append(bracket)
        elif stack:
            stack.pop()
    return stack[-1] if stack else "["


def _parse_error(error: json.JSONDecodeError, text: str) -> ServingError:
    message = _PARSE_ERRORS.get(error.msg, error.msg)
    if error.msg == "Expecting ',' delimiter":
        message = _COMMA_ERRORS[_open_bracket(text, error.pos)]
    offset = len(text[: error.pos].encode("utf-8", "surrogatepass"))
    return invalid_argument(f"JSON Parse error: {message} at offset: {offset}")


def _raw_decode(text: str, start: int) -> Any:
    try:
        decoder = _CHECKED if _may_overflow(text) else _LENIENT
        doc, end = decoder.raw_decode(text, start)  # stops after the document, like TF
    except RecursionError:
        raise invalid_argument("JSON Parse error: The document is nested too deeply.") from None
    if "\\u" in text:  # orjson refuses half a surrogate pair, as rapidjson; the stdlib does not
        for literal in _STRINGS.finditer(text, start, end):
            for escape in _ESCAPES.finditer(literal.group()):
                if escape.group(1):
                    where = text[: literal.start() + escape.start()]
                    offset = len(where.encode("utf-8", "surrogatepass"))
                    raise invalid_argument("JSON Parse error: The surrogate pair in string is "
                                           f"invalid. at offset: {offset}")
    return doc


def _loads_lenient(body: bytes | str) -> Any:
    """The stdlib parser, for what orjson refuses: NaN/Inf tokens and trailing bytes."""
    try:
        text = body if isinstance(body, str) else body.decode("utf-8")
    except UnicodeDecodeError as e:
        message = f"JSON Parse error: Invalid encoding in string. at offset: {e.start}"
        raise invalid_argument(message) from None
    start = len(text) - len(text.lstrip(" \t\n\r"))
    if start == len(text):
        raise invalid_argument(f"JSON Parse error: The document is empty. at offset: {start}")
    try:
        return _raw_decode(text, start)
    except json.JSONDecodeError as error:
        first_error = error
    if "Inf" in text or "-NaN" in text:  # tokens rapidjson reads and the stdlib does not
        try:
            return _raw_decode(_TOKENS.sub(_normalize_token, text), start)
        except json.JSONDecodeError:
            pass
    raise _parse_error(first_error, text)


def _debug_text(doc: Any) -> str:
    """The document as TensorFlow Serving quotes it in errors: one line, truncated."""
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= _MAX_DEBUG_BYTES:
        return text
    return data[:_MAX_DEBUG_BYTES].decode("utf-8", "ignore") + "..."


def json_value_error(doc: Any, message: str) -> ServingError:
    """``FormatError``: INVALID_ARGUMENT ``JSON Value: <doc> <message>``."""
    return invalid_argument(f"JSON Value: {_debug_text(doc)} {message}")


def parse_json_object(body: bytes | bytearray | memoryview | str) -> dict[str, Any]:
    """Parses a request body that must be a JSON object, with rapidjson's leniency.

    orjson parses ordinary bodies; the stdlib takes over for what only rapidjson
    accepts: ``NaN``, ``Infinity``, ``-Infinity``, ``Inf``, ``-Inf`` tokens and bytes after
    the document (ignored).

    Raises:
        ServingError: INVALID_ARGUMENT ``JSON Parse error: The document is empty``,
            ``JSON Parse error: <rapidjson message> at offset: <n>`` or
            ``JSON Value: <doc> Is not object``.
    """
    if isinstance(body, bytearray | memoryview):
        body = bytes(body)
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = _loads_lenient(body)
    if not isinstance(doc, dict):
        raise json_value_error(doc, "Is not object")
    return doc
