"""TFLite variants of an exported SavedModel, and a runner to evaluate them.

Variants (``--tflite``):

* ``fp32``: plain conversion.
* ``fp16``: float16 weights (half the size, float compute).
* ``dynamic``: int8 weights, activations quantized on the fly.
* ``int8``: full-integer post-training quantization, calibrated on training inputs; the model
  keeps its float/uint8 interface, so the same requests work on every variant.
* ``qat``: int8 model from quantization-aware training (see :mod:`export.qat`).

Conversion goes through the ``serving_default`` concrete function: converting the SavedModel
directory leaves Keras 3's resource variables uninitialised in the TFLite graph (every output
was the untrained model's), while a concrete function freezes them into constants.

TensorFlow Serving reads a TFLite model's signatures only from its ``signature_defs_metadata``
(without one it names inputs and outputs after the converter's tensors, such as
``serving_default_image:0``), so every variant carries its SignatureDef there, with the aliases
of the SavedModel, and is verified by running it the way the engine serves it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_serving_platform.export.signatures import PREDICT_KEY
from tf_serving_platform.export.verify import run_signature
from tf_serving_platform.models.data import Arrays
from tf_serving_platform.serving.engine.servable import Servable
from tf_serving_platform.serving.engine.tflite_session import (
    TfLiteSession,
    embed_signature_defs,
    flatbuffer_signature_defs,
)

CALIBRATION_SAMPLES = 200


def _representative(calibration: Arrays) -> Iterator[dict[str, np.ndarray]]:
    rows = min(CALIBRATION_SAMPLES, len(next(iter(calibration.values()))))
    for i in range(rows):
        yield {name: values[i:i + 1] for name, values in calibration.items()}


def convert(saved_model_dir: Path, variant: str, calibration: Arrays | None = None) -> bytes:
    """Convert the ``serving_default`` signature of a SavedModel to a TFLite flatbuffer.

    Args:
        variant: one of ``export.variant_names.VARIANTS`` (``qat`` converts an already
            fake-quantized model).
        calibration: training inputs, required for ``int8``.
    """
    loaded = tf.saved_model.load(str(saved_model_dir))
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [loaded.signatures[PREDICT_KEY]], loaded)
    if variant != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "int8":
        if calibration is None:
            raise ValueError("int8 needs calibration data")
        converter.representative_dataset = lambda: _representative(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    flatbuffer = converter.convert()
    defs = flatbuffer_signature_defs(tf.lite.Interpreter(model_content=flatbuffer))
    return embed_signature_defs(flatbuffer, defs)


class TfliteRunner:
    """Runs the ``serving_default`` signature of a TFLite model as the engine serves it."""

    def __init__(self, model: bytes | Path):
        flatbuffer = model if isinstance(model, bytes) else Path(model).read_bytes()
        session = TfLiteSession(flatbuffer, pool_size=1)
        self._servable = Servable("tflite", 0, Path(), "TFLite", session.signature_defs, session)

    def __call__(self, inputs: Arrays) -> dict[str, np.ndarray]:
        return run_signature(self._servable, PREDICT_KEY, inputs)
