"""TFRecord files read without TensorFlow: the request log, warmup files, load-test replays.

A record is ``uint64 length | uint32 masked crc32c(length) | data | uint32 masked crc32c(data)``
(little-endian), as ``tensorflow/core/lib/io/record_writer.cc`` writes it. Reading needs no
TensorFlow, so ``servectl inspect`` and the Locust processes of a replay start at once.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import google_crc32c

_MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


class CorruptRecord(ValueError):
    """A record whose checksum does not match: the file is damaged, not merely cut short."""


def read_records(path: str | Path) -> Iterator[bytes]:
    """Every record of one file, in order; stops quietly at a truncated last record (a writer
    still running, or killed).

    Raises:
        CorruptRecord: naming the file and the offset where the bad record starts.
    """
    with open(path, "rb") as file:
        offset = 0
        while True:
            header = file.read(12)
            if len(header) < 12:
                return
            length, length_crc = struct.unpack("<QI", header)
            if masked_crc(header[:8]) != length_crc:
                raise CorruptRecord(f"{path}: corrupt record at offset {offset}")
            data = file.read(length)
            footer = file.read(4)
            if len(data) < length or len(footer) < 4:
                return
            if masked_crc(data) != struct.unpack("<I", footer)[0]:
                raise CorruptRecord(f"{path}: corrupt record at offset {offset}")
            yield data
            offset += 16 + length


def write_record(file, data: bytes) -> int:
    """Append one record to an open binary file; returns the bytes written."""
    header = struct.pack("<Q", len(data))
    file.write(header + struct.pack("<I", masked_crc(header)) + data +
               struct.pack("<I", masked_crc(data)))
    return 16 + len(data)
