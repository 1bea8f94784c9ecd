"""The physical limit: a version's signature called directly, with no server in between."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_serving_platform.serving.engine.servable import load_saved_model

BATCH_SIZES = (1, 8, 32, 64, 128, 256)


def _repeat(example: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    return {k: np.repeat(v, rows, axis=0) for k, v in example.items()}


def in_process_limit(version_dir: Path, example: dict[str, np.ndarray],
                     seconds_per_size: float = 2.0) -> dict:
    """Best examples/s over batch sizes, and the single-example call's latency percentiles."""
    servable = load_saved_model("bench", 1, version_dir, {"serve"}, tf.compat.v1.ConfigProto())
    outputs = sorted(servable.signatures["serving_default"].outputs)
    throughput = {}
    single_ms: list[float] = []
    for size in BATCH_SIZES:
        batch = _repeat(example, size)
        servable.run("serving_default", batch, outputs)  # trace / warm up this size
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds_per_size:
            t = time.perf_counter()
            servable.run("serving_default", batch, outputs)
            if size == 1:
                single_ms.append((time.perf_counter() - t) * 1000)
            calls += 1
        throughput[size] = calls * size / (time.perf_counter() - started)
    best = max(throughput, key=throughput.get)
    return {"best_batch": best, "best_examples_per_s": throughput[best],
            "examples_per_s_by_batch": throughput,
            "single_p50_ms": float(np.percentile(single_ms, 50)),
            "single_p99_ms": float(np.percentile(single_ms, 99))}
