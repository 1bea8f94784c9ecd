"""Messages between the model process and its front-end processes: length-prefixed pickles.

One unix socket per front end carries calls, replies, metric records and health, in both
directions. Pickle protocol 5 writes numpy arrays as raw bytes (no per-element work); frames
sent during one turn of the event loop leave in one write, so a front end that forwards many
small requests pays one system call per turn, not per request. Both ends are processes of
the same engine, started from the same installation: nothing else may connect (the socket lives
in a directory only the engine's user can enter).
"""

from __future__ import annotations

import asyncio
import copyreg
import io
import pickle
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

HEADER = struct.Struct("!I")
MAX_FRAME_BYTES = (1 << 32) - 1
NUMPY_ITERATION_RANK = 32
"""numpy iterates object arrays through 32-dimension buffers, so it cannot pickle a string
tensor of higher rank; such a tensor travels flat and is refused where one process would
refuse it (the servable's own check), not as a pickling error."""


def _reduce_array(array: np.ndarray):
    if array.dtype == object and array.ndim > NUMPY_ITERATION_RANK:
        return _reshaped, (array.reshape(-1), array.shape)
    return array.__reduce_ex__(5)


def _reshaped(flat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return flat.reshape(shape)


_DISPATCH = copyreg.dispatch_table | {np.ndarray: _reduce_array}


def dumps(message: Any) -> bytes:
    """``message`` as pickle protocol 5 (arrays as raw bytes), any rank of string tensor."""
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=5)
    pickler.dispatch_table = _DISPATCH
    pickler.dump(message)
    return out.getvalue()


class FrameChannel(asyncio.Protocol):
    """One end of a front-end connection: ``send`` objects, receive them in ``on_frame``."""

    def __init__(self, on_frame: Callable[[Any], None], on_lost: Callable[[], None]):
        self._on_frame, self._on_lost = on_frame, on_lost
        self._received = bytearray()
        self._outbox: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        if self._outbox:  # queued before the connection was made
            self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._on_lost()

    def data_received(self, data: bytes) -> None:
        received = self._received
        received += data
        offset, size = 0, len(received)
        while size - offset >= HEADER.size:
            (length,) = HEADER.unpack_from(received, offset)
            end = offset + HEADER.size + length
            if end > size:
                break
            with memoryview(received) as view:
                frame = pickle.loads(view[offset + HEADER.size:end])
            offset = end
            self._on_frame(frame)
        del received[:offset]

    def send(self, message: Any) -> None:
        """Queue ``message``; everything queued in this turn of the loop leaves together."""
        if self.closed:
            return
        data = dumps(message)
        if len(data) > MAX_FRAME_BYTES:
            raise ValueError(f"a frame of {len(data)} bytes is over the 4 GiB limit")
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox += (HEADER.pack(len(data)), data)

    def _flush(self) -> None:
        if self._transport is None or not self._outbox:
            return
        outbox, self._outbox = self._outbox, []
        if not self._transport.is_closing():
            self._transport.writelines(outbox)

    def close(self) -> None:
        if self._transport is not None:
            self._flush()
            self._transport.close()
