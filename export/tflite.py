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
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf

from export.describe import SignatureSummary, TensorSummary
from export.signatures import PREDICT_KEY
from models.data import Arrays

warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")

VARIANTS = ("fp32", "fp16", "dynamic", "int8", "qat")
CALIBRATION_SAMPLES = 200
TFLITE_FILE = "model.tflite"


def _representative(calibration: Arrays) -> Iterator[dict[str, np.ndarray]]:
    rows = min(CALIBRATION_SAMPLES, len(next(iter(calibration.values()))))
    for i in range(rows):
        yield {name: values[i:i + 1] for name, values in calibration.items()}


def convert(saved_model_dir: Path, variant: str, calibration: Arrays | None = None) -> bytes:
    """Convert the ``serving_default`` signature of a SavedModel to a TFLite flatbuffer.

    Args:
        variant: one of :data:`VARIANTS` (``qat`` converts an already fake-quantized model).
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
    return converter.convert()


class TfliteRunner:
    """Runs the ``serving_default`` signature of a TFLite model on named numpy inputs."""

    def __init__(self, model: bytes | Path):
        kwargs = ({"model_content": model} if isinstance(model, bytes)
                  else {"model_path": str(model)})
        self._interpreter = tf.lite.Interpreter(**kwargs)
        self._runner = self._interpreter.get_signature_runner(PREDICT_KEY)

    def signatures(self) -> list[SignatureSummary]:
        """Signature summaries, in :mod:`export.describe`'s format."""
        def tensors(details: dict) -> tuple:
            return tuple(TensorSummary(name, np.dtype(d["dtype"]).name,
                                       tuple(None if s < 0 else int(s)
                                             for s in d["shape_signature"]))
                         for name, d in sorted(details.items()))
        found = []
        for key in self._interpreter.get_signature_list():
            runner = self._interpreter.get_signature_runner(key)
            found.append(SignatureSummary(key, "tflite", tensors(runner.get_input_details()),
                                          tensors(runner.get_output_details())))
        return found

    def __call__(self, inputs: Arrays) -> dict[str, np.ndarray]:
        return {k: np.array(v) for k, v in self._runner(**inputs).items()}
