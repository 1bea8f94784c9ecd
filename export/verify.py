"""Verification before publishing: the reloaded SavedModel must answer like the in-memory model."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from export.errors import ExportError
from export.examples import serialize
from export.signatures import (
    CLASSIFY_KEY,
    PREDICT_KEY,
    REGRESS_KEY,
    classifier_head,
    regressor_head,
)
from models.zoo import Head

FLOAT_TOLERANCE = 1e-5

Arrays = Mapping[str, np.ndarray]


def max_abs_diff(expected: Arrays, actual: Arrays) -> float:
    """Largest absolute difference over the float outputs; non-float outputs must match exactly.

    Raises:
        ExportError: an output is missing, has another shape, or a non-float value differs.
    """
    worst = 0.0
    for name, want in expected.items():
        got = np.asarray(actual.get(name)) if name in actual else None
        want = np.asarray(want)
        if got is None or got.shape != want.shape:
            raise ExportError(f"verification failed: output {name!r} is "
                              f"{None if got is None else got.shape}, expected {want.shape}")
        if want.dtype.kind in "fc":
            worst = max(worst, float(np.max(np.abs(got - want), initial=0.0)))
        elif not np.array_equal(got, want):
            raise ExportError(f"verification failed: output {name!r} differs")
    return worst


def run_signature(loaded, key: str, inputs: Arrays) -> dict[str, np.ndarray]:
    """Call signature ``key`` of a loaded SavedModel on numpy inputs."""
    fn = loaded.signatures[key]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


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
                       heads: Sequence[Head] = (),
                       tolerance: float = FLOAT_TOLERANCE) -> float:
    """Reload ``export_dir`` and compare every signature against the in-memory model.

    ``serving_default`` must reproduce ``reference(inputs)``; ``classify`` scores and ``regress``
    outputs, fed the same rows as serialized ``tf.Example``, must match the reference too.

    Returns:
        The largest absolute difference seen.

    Raises:
        ExportError: a difference above ``tolerance``, or a signature that fails.
    """
    loaded = tf.saved_model.load(str(export_dir))
    expected = reference(inputs)
    worst = max_abs_diff(expected, run_signature(loaded, PREDICT_KEY, inputs))
    examples = {"inputs": serialize(inputs)}
    for key, want in expected_example_outputs(heads, expected).items():
        got = run_signature(loaded, key, examples)
        worst = max(worst, max_abs_diff(want, got))
    if worst > tolerance:
        raise ExportError(f"verification failed: reloaded SavedModel differs from the in-memory "
                          f"model by {worst:.3g} (tolerance {tolerance:g})")
    return worst
