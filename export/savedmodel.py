"""Writing the SavedModel of a version (from a Keras model, or copied from an existing one)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from export import signatures, verify
from export.errors import ExportError
from export.sources import ExportSource, random_inputs
from models.data import Arrays

VERIFY_ROWS = 64


def write_keras_saved_model(model: Any, source: ExportSource, export_dir: Path) -> list[str]:
    """Save ``model`` with predict (and classify/regress) signatures; return their keys."""
    class_names = source.data.class_names if source.data else ()
    module = signatures.ServingModule(model, source.heads, class_names)
    found = module.signatures()
    tf.saved_model.save(module, str(export_dir), signatures=found)
    signatures.set_method_names(export_dir)
    return list(found)


def eager_outputs(model: Any, inputs: Arrays) -> dict[str, np.ndarray]:
    """The in-memory model's outputs, run eagerly and named as in the signature."""
    tensors = {k: tf.constant(v) for k, v in inputs.items()}
    return {k: v.numpy() for k, v in signatures.call_model(model, tensors).items()}


def sample_inputs(source: ExportSource) -> Arrays:
    """Held-out rows for zoo models, generated rows matching the signature otherwise."""
    if source.data is not None:
        return {k: v[:VERIFY_ROWS] for k, v in source.data.x_test.items()}
    if source.model is not None:
        return random_inputs(signatures.input_specs(source.model))
    loaded = tf.saved_model.load(str(source.saved_model))
    return random_inputs(loaded.signatures[signatures.PREDICT_KEY].structured_input_signature[1])


def write_and_verify(source: ExportSource, export_dir: Path) -> tuple[list[str], float, Arrays]:
    """Write the version's SavedModel into ``export_dir`` and verify it.

    Returns:
        The signature keys, the max abs difference found, and the inputs verified on.
    """
    inputs = sample_inputs(source)
    if source.model is not None:
        keys = write_keras_saved_model(source.model, source, export_dir)
        diff = verify.verify_saved_model(export_dir, inputs,
                                         lambda x: eager_outputs(source.model, x), source.heads)
        return keys, diff, inputs
    shutil.copytree(source.saved_model, export_dir)
    original = tf.saved_model.load(str(source.saved_model))
    if signatures.PREDICT_KEY not in original.signatures:
        raise ExportError(f"{source.saved_model} has no {signatures.PREDICT_KEY!r} signature")
    diff = verify.verify_saved_model(
        export_dir, inputs, lambda x: verify.run_signature(original, signatures.PREDICT_KEY, x))
    return sorted(original.signatures.keys()), diff, inputs


def directory_bytes(path: Path) -> int:
    return int(np.sum([p.stat().st_size for p in Path(path).rglob("*") if p.is_file()]))
