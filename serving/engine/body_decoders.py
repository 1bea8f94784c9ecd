"""Large REST bodies decoded in child processes: off the event loop, out of the engine's memory.

Parsing JSON is long C calls that hold the GIL (orjson, numpy's list conversion): on a thread,
a 72 MB body left the event loop 7 turns in 8 seconds, so every other client waited. In a child
process the event loop keeps serving, the Python objects a document becomes (15-40x its size)
live and die in the child, and the engine receives only the decoded arrays. Bodies up to
``OFF_LOOP_BYTES`` are decoded inline: below it the hop costs more than the work. So are dense
bodies up to ``DENSE_INLINE_BYTES`` that the fast path reads (no Python object per number: a
MobileNetV2 image, 3 MB of JSON, in 6-10 ms): for them the hop, which pickles the body and its
arrays through pipes, cost more CPU than the decoding (``benchmarks.profile``).

A child that dies (the OOM killer) fails only the request it was decoding (UNAVAILABLE); the
pool is rebuilt for the next one.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

import grpc

from tf_serving_platform.serving import codec, logger
from tf_serving_platform.serving.codec.json_decode import PredictJsonRequest
from tf_serving_platform.serving.engine import memory
from tf_serving_platform.serving.engine.cpus import usable_cpus
from tf_serving_platform.serving.errors import ServingError

log = logger(__name__)
T = TypeVar("T")
OFF_LOOP_BYTES = 256 << 10
DENSE_INLINE_BYTES = 4 << 20


def decode_dense_predict(body: bytes) -> tuple[str, PredictJsonRequest] | None:
    """:func:`decode_predict` by the fast path alone; None where it does not apply."""
    request = codec.decode_dense_predict_json(body)
    return None if request is None else (request.signature_name or "", request)


def decode_predict(body: bytes) -> tuple[str, PredictJsonRequest | ServingError]:
    """A predict body's signature name and its tensors, or the error decoding them gave:
    the caller checks the signature first, as TensorFlow Serving looks it up before reading
    the tensors. A body that is not a JSON object raises."""
    dense = decode_dense_predict(body)
    if dense is not None:
        return dense
    document = codec.parse_predict_json(body)
    try:
        return document.get("signature_name") or "", codec.decode_predict_document(document)
    except ServingError as e:
        return document.get("signature_name") or "", e


def _in_child(fn: Callable[[bytes], T], body: bytes) -> T:
    try:
        return fn(body)
    finally:
        memory.trim()  # the document's pages, back to the OS before the next body


class BodyDecoders:
    """A pool of decoder processes, started with the engine and rebuilt when one dies."""

    def __init__(self, workers: int = 0):
        self._workers = workers or min(4, usable_cpus())
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self._workers, mp_context=multiprocessing.get_context("spawn"))

    def warm(self) -> None:
        """Start the processes now, so that the first large body does not wait for them."""
        for _ in range(self._workers):
            self._pool.submit(os.getpid)  # any task makes the pool start a process

    async def decode(self, fn: Callable[[bytes], T], body: bytes,
                     dense: Callable[[bytes], T | None] | None = None) -> T:
        """``fn(body)``, in a child process when the body is large, unless ``dense(body)``
        (``fn``'s fast path) reads it inline."""
        if len(body) <= OFF_LOOP_BYTES:
            return fn(body)
        if dense is not None and len(body) <= DENSE_INLINE_BYTES:
            found = dense(body)
            if found is not None:
                return found
        pool = self._pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, _in_child, fn, body)
        except BrokenProcessPool:
            if pool is self._pool:
                log.error("a body decoder process died (out of memory?); restarting the pool")
                self._pool = self._new_pool()
            raise ServingError(grpc.StatusCode.UNAVAILABLE, "The process decoding this "
                               "request's body died (out of memory?); retry") from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
