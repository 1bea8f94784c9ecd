"""What a REST body costs to decode, careful path against the fast path, and to encode.

    python -m benchmarks.json_codec

For an MLP example (1x64), a CNN image (1x28x28x1) and a MobileNetV2 image (1x224x224x3) of
float32 values, written as a Python client writes them (``json.dumps`` of ``tolist()``, named
rows as ``benchmarks.run`` sends them): milliseconds per decode by the careful path (orjson, then
numpy over Python objects) and by ``decode_predict_json`` (which takes the fast path for large
tensors), and per ``encode_predict_json`` of an output of the same shape (TensorFlow Serving's
float text).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np

from tf_serving_platform.serving.codec.json_decode import (
    decode_predict_document,
    decode_predict_json,
    parse_predict_json,
)
from tf_serving_platform.serving.codec.json_encode import encode_predict_json
from tf_serving_platform.serving.tables import format_table

SHAPES = {"MLP example": (1, 64), "CNN image": (1, 28, 28, 1),
          "MobileNetV2 image": (1, 224, 224, 3)}


def per_call_ms(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """The median of ten timed rounds, each of as many calls as fill a tenth of ``seconds``."""
    fn()
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < seconds / 10:
        fn()
        calls += 1
    rounds = []
    for _ in range(10):
        start = time.perf_counter()
        for _ in range(calls + 1):
            fn()
        rounds.append((time.perf_counter() - start) / (calls + 1))
    return float(np.median(rounds)) * 1e3


def main() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for name, shape in SHAPES.items():
        tensor = rng.random(shape).astype(np.float32)
        body = json.dumps({"instances": [{"x": tensor[0].tolist()}]}).encode()
        careful = per_call_ms(lambda b=body: decode_predict_document(parse_predict_json(b)))
        fast = per_call_ms(lambda b=body: decode_predict_json(b))
        encode = per_call_ms(lambda t=tensor: encode_predict_json({"y": t}, True))
        rows.append([name, f"{len(body):,}", f"{careful:.3f}", f"{fast:.3f}",
                     f"{careful / fast:.1f}x", f"{encode:.3f}"])
    print(format_table(["tensor", "body bytes", "careful decode ms", "decode ms", "speed-up",
                        "encode ms"], rows))


if __name__ == "__main__":
    main()
