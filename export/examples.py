"""Serialized ``tf.Example`` records from named numpy inputs, for Classify/Regress requests."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf


def _feature(values: np.ndarray) -> tf.train.Feature:
    flat = values.reshape(-1)
    if flat.dtype.kind == "f":
        return tf.train.Feature(float_list=tf.train.FloatList(value=flat))
    if flat.dtype.kind in "iub":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=flat.astype(np.int64)))
    encoded = [v if isinstance(v, bytes) else str(v).encode() for v in flat]
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=encoded))


def to_examples(inputs: Mapping[str, np.ndarray]) -> list[tf.train.Example]:
    """One ``tf.Example`` per row of ``inputs``; each input becomes a feature of the same name."""
    rows = len(next(iter(inputs.values())))
    return [tf.train.Example(features=tf.train.Features(
        feature={name: _feature(np.asarray(values[i])) for name, values in inputs.items()}))
        for i in range(rows)]


def serialize(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The rows of ``inputs`` as a ``[rows]`` object array of serialized ``tf.Example``."""
    return np.array([e.SerializeToString() for e in to_examples(inputs)], dtype=object)
