"""Verification before publishing: the reloaded SavedModel must answer like the in-memory model.

It is reloaded the way TensorFlow Serving (and the engine) loads it: the MetaGraph in a session,
run by tensor name. ``tf.saved_model.load`` restores variables through the object graph instead,
and so passes exports that TensorFlow Serving cannot serve.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_serving_platform.export.errors import ExportError
from tf_serving_platform.export.examples import serialize
from tf_serving_platform.export.signatures import (
    CLASSIFY_KEY,
    PREDICT_KEY,
    REGRESS_KEY,
    classifier_head,
    regressor_head,
)
from tf_serving_platform.models.zoo import Head
from tf_serving_platform.serving.engine.servable import Servable, load_saved_model

FLOAT_TOLERANCE = 1e-5
RELATIVE_TOLERANCE = 1e-6

Arrays = Mapping[str, np.ndarray]


def max_abs_diff(expected: Arrays, actual: Arrays) -> float:
    """Largest absolute difference over the float outputs; non-float outputs must match exactly.

    Raises:
        ExportError: an output is missing, has another shape, a non-float value differs, or a
            float differs by more than ``FLOAT_TOLERANCE`` plus ``RELATIVE_TOLERANCE`` of its
            size (a session's fused kernels round large outputs a little differently).
    """
    worst = 0.0
    for name, want in expected.items():
        got = np.asarray(actual.get(name)) if name in actual else None
        want = np.asarray(want)
        if got is None or got.shape != want.shape:
            raise ExportError(f"verification failed: output {name!r} is "
                              f"{None if got is None else got.shape}, expected {want.shape}")
        if want.dtype.kind in "fc":
            error = np.abs(got - want)
            worst = max(worst, float(np.max(error, initial=0.0)))
            if np.any(error > FLOAT_TOLERANCE + RELATIVE_TOLERANCE * np.abs(want)):
                raise ExportError(f"verification failed: output {name!r} of the reloaded "
                                  f"SavedModel differs from the in-memory model by "
                                  f"{float(np.max(error)):.3g} (tolerance {FLOAT_TOLERANCE:g} "
                                  f"+ {RELATIVE_TOLERANCE:g} x |value|)")
        elif not np.array_equal(got, want):
            raise ExportError(f"verification failed: output {name!r} differs")
    return worst


def load_as_served(version_dir: Path) -> Servable:
    """A SavedModel directory loaded as TensorFlow Serving loads it."""
    return load_saved_model("verify", 0, Path(version_dir), {"serve"},
                            tf.compat.v1.ConfigProto())


def run_signature(servable: Servable, key: str, inputs: Arrays) -> dict[str, np.ndarray]:
    """Every output of signature ``key`` on numpy inputs."""
    return servable.run(key, inputs, sorted(servable.signatures[key].outputs))


def expected_example_outputs(heads: Sequence[Head], predicted: Arrays) -> dict[str, Arrays]:
    """What ``classify``/``regress`` must return, derived from ``serving_default`` outputs."""
    expected: dict[str, Arrays] = {}
    if head := classifier_head(heads):
        scores = np.asarray(predicted[head.output])
        if head.kind == "binary":
            scores = np.concatenate([1.0 - scores, scores], axis=-1)
        expected[CLASSIFY_KEY] = {"scores": scores}
    if head := regressor_head(heads):
        expected[REGRESS_KEY] = {"outputs": np.asarray(predicted[head.output]).reshape(-1)}
    return expected


def verify_saved_model(export_dir: Path, inputs: Arrays,
                       reference: Callable[[Arrays], dict[str, np.ndarray]],
                       heads: Sequence[Head] = ()) -> float:
    """Reload ``export_dir`` and compare every signature against the in-memory model.

    ``serving_default`` must reproduce ``reference(inputs)``; ``classify`` scores and ``regress``
    outputs, fed the same rows as serialized ``tf.Example``, must match the reference too.

    Returns:
        The largest absolute difference seen.

    Raises:
        ExportError: a difference above the tolerance (see :func:`max_abs_diff`), or a
            signature that fails.
    """
    loaded = load_as_served(export_dir)
    expected = reference(inputs)
    worst = max_abs_diff(expected, run_signature(loaded, PREDICT_KEY, inputs))
    examples = {"inputs": serialize(inputs)}
    for key, want in expected_example_outputs(heads, expected).items():
        got = run_signature(loaded, key, examples)
        worst = max(worst, max_abs_diff(want, got))
    return worst
