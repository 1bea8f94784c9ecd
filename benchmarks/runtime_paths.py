"""How a version is run: TensorFlow Serving's session by tensor name vs the TF2 function.

The engine runs every SavedModel as TensorFlow Serving does, in a TF1 session fed and fetched
by tensor name (``serving.engine.servable.GraphSession``). Before, it called the signature's
concrete function from ``tf.saved_model.load``. This prints, per model and batch size, the
microseconds per call of each, measured side by side in one process, and their ratio:

    .venv/bin/python -m benchmarks.runtime_paths --base-path /tmp/bench-models

(``--base-path`` gets the zoo's digits MLP and CNN exported into it when they are missing).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_serving_platform.serving.engine.servable import load_saved_model

MODELS = {"digits_mlp": ("pixels", (64,), np.float32),
          "digits_cnn": ("image", (8, 8, 1), np.uint8)}
BATCH_SIZES = (1, 8, 64)


def _microseconds_per_call(call: Callable[[], object], seconds: float) -> float:
    for _ in range(50):
        call()
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        call()
        calls += 1
    return (time.perf_counter() - started) / calls * 1e6


def _version(base: Path, model: str) -> Path:
    if not (base / model / "1").exists():
        from tf_serving_platform.export.pipeline import export_model
        from tf_serving_platform.export.sources import resolve

        export_model(resolve(model, progress=False), base, version=1)
    return base / model / "1"


def _compare(model: str, path: Path, seconds: float) -> None:
    name, shape, dtype = MODELS[model]
    servable = load_saved_model(model, 1, path, {"serve"}, tf.compat.v1.ConfigProto())
    function = tf.saved_model.load(str(path)).signatures["serving_default"]
    outputs = sorted(servable.signatures["serving_default"].outputs)
    for batch in BATCH_SIZES:
        x = np.ones((batch, *shape), dtype)
        session = _microseconds_per_call(
            lambda x=x: servable.run("serving_default", {name: x}, outputs), seconds)
        eager = _microseconds_per_call(
            lambda x=x: {k: v.numpy() for k, v in function(**{name: tf.constant(x)}).items()},
            seconds)
        print(f"{model:<12}{batch:>6}{session:>12.0f}{eager:>13.0f}{eager / session:>17.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-path", type=Path, default=Path("/tmp/bench-models"))
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    args = parser.parse_args()
    print(f"{'model':<12}{'batch':>6}{'session us':>12}{'function us':>13}{'function/session':>18}")
    for model in MODELS:
        _compare(model, _version(args.base_path, model), args.seconds)


if __name__ == "__main__":
    main()
