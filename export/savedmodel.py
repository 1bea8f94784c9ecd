"""Writing the SavedModel of a version (from a Keras model, or copied from an existing one)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tf_serving_platform.export import signatures, verify
from tf_serving_platform.export.errors import ExportError
from tf_serving_platform.export.sources import ExportSource, random_inputs
from tf_serving_platform.models.data import Arrays
from tf_serving_platform.serving.engine.signature import SignatureInfo

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
    return random_inputs(signatures.input_specs(source.model))


def declared_inputs(signature: SignatureInfo, rows: int = VERIFY_ROWS) -> Arrays | None:
    """Generated inputs of a signature's declared dtypes and shapes (unknown dimensions 1,
    unknown rank a vector of ``rows``); None when an input is a string, which may have to be a
    serialized ``tf.Example`` that nothing here knows how to fill."""
    if any(info.dtype.name == "string" for info in signature.inputs.values()):
        return None
    specs = {alias: tf.TensorSpec([None] if info.shape is None else info.shape,
                                  tf.as_dtype(info.dtype.enum))
             for alias, info in signature.inputs.items()}
    return random_inputs(specs, rows)


def write_and_verify(source: ExportSource, export_dir: Path
                     ) -> tuple[list[str], float | None, Arrays]:
    """Write the version's SavedModel into ``export_dir`` and verify it as TF Serving runs it.

    Returns:
        The signature keys, the max abs difference found (None when ``serving_default`` takes
        strings and so was only loaded, not run), and the inputs verified on (``{}`` then).
    """
    if source.model is not None:
        inputs = sample_inputs(source)
        keys = write_keras_saved_model(source.model, source, export_dir)
        diff = verify.verify_saved_model(export_dir, inputs,
                                         lambda x: eager_outputs(source.model, x), source.heads)
        return keys, diff, inputs
    shutil.copytree(source.saved_model, export_dir)
    try:
        copy = verify.load_as_served(export_dir)
    except Exception as e:  # TensorFlow raises many types for a graph it cannot load
        raise ExportError(f"{source.saved_model} does not load as TensorFlow Serving loads it: "
                          f"{e}") from None
    if signatures.PREDICT_KEY not in copy.signatures:
        raise ExportError(f"{source.saved_model} has no {signatures.PREDICT_KEY!r} signature")
    keys = sorted(copy.signatures)
    inputs = declared_inputs(copy.signatures[signatures.PREDICT_KEY])
    if inputs is None:
        return keys, None, {}
    original = verify.load_as_served(source.saved_model)
    diff = verify.verify_saved_model(
        export_dir, inputs, lambda x: verify.run_signature(original, signatures.PREDICT_KEY, x))
    return keys, diff, inputs


def directory_bytes(path: Path) -> int:
    return int(np.sum([p.stat().st_size for p in Path(path).rglob("*") if p.is_file()]))
