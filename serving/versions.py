"""Which directory names are versions: TensorFlow Serving's rule, kept to ASCII digits.

TensorFlow Serving reads a child of a base path as a version when its name parses as an int64
(``absl::SimpleAtoi`` in ``file_system_storage_path_source.cc``); any other name is skipped.
Here only ASCII digits count: ``str.isdigit`` also accepts ``²`` (which ``int()`` then refuses,
failing the whole listing) and ``١٣`` (which ``int()`` reads as 13), and a number past int64 is
no version that a ``ModelSpec`` or a metric could name.
"""

from __future__ import annotations

MAX_VERSION = 2**63 - 1
"""The largest int64: a version is an int64 in every TensorFlow Serving API."""


def parse_version(name: str) -> int | None:
    """The version ``name`` names, or None when it names none."""
    if not (name.isascii() and name.isdigit()):
        return None
    number = int(name)
    return number if number <= MAX_VERSION else None


def looks_like_a_version(name: str) -> bool:
    """Digits of some script, or past int64: a name meant as a version that is not one (worth
    a log line, unlike ``assets`` or a staging directory)."""
    return name.isdigit() and parse_version(name) is None
