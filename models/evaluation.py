"""Scoring predictions against held-out targets, the same way for Keras, SavedModel and TFLite."""

from __future__ import annotations

import numpy as np

from tf_serving_platform.models.zoo import Head


def score(head: Head, predicted: np.ndarray, target: np.ndarray) -> float:
    """Accuracy for classification heads, mean absolute error for regression heads."""
    predicted = np.asarray(predicted)
    target = np.asarray(target).reshape(len(predicted), -1)
    if head.kind == "classification":
        return float(np.mean(predicted.argmax(axis=-1) == target[:, 0]))
    if head.kind == "binary":
        return float(np.mean((predicted.reshape(target.shape) > 0.5) == (target > 0.5)))
    return float(np.mean(np.abs(predicted.reshape(target.shape) - target)))


def metric_name(head: Head) -> str:
    return "mae" if head.kind == "regression" else "accuracy"


def higher_is_better(head: Head) -> bool:
    return head.kind != "regression"


def evaluate(heads: tuple[Head, ...], outputs: dict[str, np.ndarray],
             targets: dict[str, np.ndarray]) -> dict[str, float]:
    """Score every head, keyed ``<output>_<metric>`` (e.g. ``probabilities_accuracy``)."""
    return {f"{h.output}_{metric_name(h)}": score(h, outputs[h.output], targets[h.output])
            for h in heads}
