"""Where a large REST body is decoded: inline when the fast path reads it and it is at most
``DENSE_INLINE_BYTES`` (the hop to a child would cost more than the decoding), in a child
process otherwise. The decoder here answers the pid of the process that ran it."""

from __future__ import annotations

import asyncio
import os

from tf_serving_platform.serving.engine.body_decoders import (
    DENSE_INLINE_BYTES,
    OFF_LOOP_BYTES,
    BodyDecoders,
)


def _pid(body: bytes) -> int:
    return os.getpid()


def _declines(body: bytes) -> None:
    return None


def test_a_dense_body_up_to_the_bound_is_decoded_inline_and_any_other_in_a_child():
    large, larger = b"x" * (OFF_LOOP_BYTES + 1), b"x" * (DENSE_INLINE_BYTES + 1)

    async def decode_each(decoders: BodyDecoders) -> list[int]:
        return [await decoders.decode(_pid, large, dense=_pid),
                await decoders.decode(_pid, large, dense=_declines),
                await decoders.decode(_pid, larger, dense=_pid),
                await decoders.decode(_pid, large)]
    decoders = BodyDecoders(1)
    try:
        where = asyncio.run(asyncio.wait_for(decode_each(decoders), timeout=120))
    finally:
        decoders.close()
    inline, declined, too_large, no_fast_path = where
    assert inline == os.getpid()
    assert os.getpid() not in (declined, too_large, no_fast_path)
