"""The argument types the commands share: each turns a bad value into one argparse line."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from tf_serving_platform.serving.versions import MAX_VERSION, parse_version

DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def duration(text: str) -> float:
    """``10s``, ``1m30s``, ``500ms``, ``2m``, ``45`` (seconds) -> seconds."""
    parts = DURATION.findall(text)
    if not parts or "".join(n + (u or "") for n, u in parts) != text.strip():
        raise argparse.ArgumentTypeError(f"expected a duration like 10s, 2m or 1m30s; got {text!r}")
    seconds = sum(float(n) * UNITS[u or None] for n, u in parts)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration; got {text!r}")
    return seconds


def positive(kind: type) -> Callable[[str], int | float]:
    """Positive ints or floats."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}")
        return value
    return parse


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}")
    return value


def version_number(minimum: int) -> Callable[[str], int]:
    """A model version at least ``minimum``: an int64, as TensorFlow Serving's versions are."""
    def parse(text: str) -> int:
        version = parse_version(text)
        if version is None or version < minimum:
            what = "a positive integer" if minimum > 0 else "a version number"
            raise argparse.ArgumentTypeError(
                f"expected {what} up to {MAX_VERSION} (an int64, as TensorFlow Serving's "
                f"versions), got {text!r}")
        return version
    return parse


def int_list(minimum: int) -> Callable[[str], tuple[int, ...]]:
    """``8,32``-style lists of distinct integers >= ``minimum`` (``loadtest.tune.parse_values``)."""
    def parse(text: str) -> tuple[int, ...]:
        from tf_serving_platform.loadtest.tune import parse_values

        try:
            return parse_values(text, minimum)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse
