"""What a hop between a front-end process and the model process costs, by tensor size.

    python -m benchmarks.frames

Each case sends a predict-sized call over a real unix socket pair (serving.engine.frames on
uvloop, as the engine does; both ends on one loop here) and waits for its echo: the time per
round trip and the bytes per second it carries, for a 64-float MLP example, a 28x28 CNN image,
a 224x224x3 MobileNetV2 image and a batch of 16 of those. Compare with what the same tensor
costs as JSON (decoded, for REST) or as a TensorProto (parsed, for gRPC), which every request
pays anyway.
"""

from __future__ import annotations

import asyncio
import socket
import time

import numpy as np
import uvloop

from tf_serving_platform.serving.engine.frames import FrameChannel, dumps

SHAPES = {"MLP example (1x64)": (1, 64), "CNN image (1x28x28x1)": (1, 28, 28, 1),
          "MobileNetV2 image (1x224x224x3)": (1, 224, 224, 3),
          "16 MobileNetV2 images": (16, 224, 224, 3)}


async def round_trips(array: np.ndarray, seconds: float = 1.0) -> tuple[float, int]:
    """Seconds per echoed call of ``array``, and how many were timed."""
    loop = asyncio.get_running_loop()
    left, right = socket.socketpair()
    replies: asyncio.Queue = asyncio.Queue()
    echo_side: list[FrameChannel] = []
    echo = FrameChannel(lambda frame: echo_side[0].send(frame), lambda: None)
    echo_side.append(echo)
    await loop.create_connection(lambda: echo, sock=right)
    caller = FrameChannel(replies.put_nowait, lambda: None)
    await loop.create_connection(lambda: caller, sock=left)
    message = ("call", 0, "predict", ({"x": array},))
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or count < 3:
        caller.send(message)
        await replies.get()
        count += 1
    elapsed = time.perf_counter() - started
    caller.close()
    echo.close()
    return elapsed / count, count


def main() -> int:
    print(f"{'tensor':<34}{'bytes':>12}{'round trip':>14}{'MB/s':>10}")
    for name, shape in SHAPES.items():
        array = np.random.default_rng(0).random(shape, dtype=np.float32)
        per_trip, _ = uvloop.run(round_trips(array))  # the engine's loop
        size = len(dumps(array))
        print(f"{name:<34}{size:>12,}{per_trip * 1e6:>11.0f} µs{2 * size / per_trip / 1e6:>10,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
