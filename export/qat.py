"""Quantization-aware training (QAT) with tensorflow-model-optimization.

tfmot supports only tf-keras, while the zoo trains with Keras 3. Because every zoo builder takes
the Keras module it builds with, the same architecture is rebuilt in tf-keras, the trained Keras 3
weights are copied over (checked: the clone must answer like the original), Dense and Conv2D
layers are annotated for quantization (preprocessing layers such as ``Rescaling`` stay float),
and the model is fine-tuned for a few epochs with fake quantization in the loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tf_serving_platform.export.errors import ExportError
from tf_serving_platform.export.sources import ExportSource
from tf_serving_platform.models import train, zoo

QAT_EPOCHS = 5
QAT_LEARNING_RATE_FACTOR = 0.1  # fine-tuning: a tenth of the recipe's learning rate
CLONE_TOLERANCE = 1e-4


def _tf_keras_clone(source: ExportSource) -> Any:
    import tf_keras

    tf_keras.utils.set_random_seed(zoo.DEFAULT_SEED)
    clone = source.spec.build(tf_keras, source.data)
    clone.set_weights(source.model.get_weights())
    sample = {k: v[:32] for k, v in source.data.x_test.items()}
    want, got = train.predict(source.model, sample), train.predict(clone, sample)
    diff = max(float(np.max(np.abs(want[k] - got[k]))) for k in want)
    if diff > CLONE_TOLERANCE:
        raise ExportError(f"qat: the tf-keras rebuild of {source.name} differs from the trained "
                          f"model by {diff:.3g}; cannot fine-tune it")
    return clone


def quantization_aware_model(source: ExportSource, progress: bool = True) -> Any:
    """A fake-quantized tf-keras copy of ``source.model``, fine-tuned on its training data.

    Raises:
        ExportError: the source is not a trainable zoo model.
    """
    if source.spec is None or source.data is None or not source.spec.epochs:
        raise ExportError("qat: quantization-aware training needs a trainable zoo model "
                          "(its training data is used for fine-tuning)")
    import tensorflow_model_optimization as tfmot
    import tf_keras

    quantize = tfmot.quantization.keras
    annotate = (tf_keras.layers.Dense, tf_keras.layers.Conv2D)
    annotated = tf_keras.models.clone_model(  # returning a layer itself keeps its weights
        _tf_keras_clone(source),
        clone_function=lambda layer: quantize.quantize_annotate_layer(layer)
        if isinstance(layer, annotate) else layer)
    with quantize.quantize_scope():
        model = quantize.quantize_apply(annotated)
    train.compile_and_fit(source.spec, model, source.data, QAT_EPOCHS, keras_module=tf_keras,
                          progress=progress,
                          learning_rate=source.spec.learning_rate * QAT_LEARNING_RATE_FACTOR)
    return model
