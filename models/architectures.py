"""Model builders for the zoo.

Every builder takes the Keras *module* it builds with (``keras`` 3, or ``tf_keras`` for
quantization-aware training, which tensorflow-model-optimization supports only on tf-keras) and
the training data (to adapt in-model preprocessing). Each model takes its inputs in their natural
form and does its own preprocessing, so a client sends raw data and the serving signature needs
no out-of-band scaling. Inputs and outputs are named dicts: those names become the SavedModel's
signature names.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from tf_serving_platform.models.data import Dataset

Model = Any  # a keras.Model or tf_keras.Model


def _classifier_head(keras: ModuleType, x: Any, num_classes: int) -> Any:
    x = keras.layers.Dense(64, activation="relu")(x)
    return keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)


def digits_mlp(keras: ModuleType, data: Dataset) -> Model:
    """Dense classifier on 64 float pixel intensities in [0, 16]."""
    pixels = keras.Input(shape=(64,), dtype="float32", name="pixels")
    x = keras.layers.Rescaling(1.0 / 16.0)(pixels)
    x = keras.layers.Dense(128, activation="relu")(x)
    probabilities = _classifier_head(keras, x, len(data.class_names))
    return keras.Model({"pixels": pixels}, {"probabilities": probabilities}, name="digits_mlp")


def digits_cnn(keras: ModuleType, data: Dataset) -> Model:
    """Small CNN on raw 8x8x1 ``uint8`` images; scaling to [0, 1] happens in the model."""
    image = keras.Input(shape=(8, 8, 1), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1.0 / 255.0)(image)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    probabilities = _classifier_head(keras, x, len(data.class_names))
    return keras.Model({"image": image}, {"probabilities": probabilities}, name="digits_cnn")


def _denormalize(keras: ModuleType, x: Any, target: np.ndarray, name: str) -> Any:
    """Map a unit-scale prediction back to the target's units inside the model."""
    return keras.layers.Rescaling(float(target.std()), offset=float(target.mean()), name=name)(x)


def diabetes_mlp(keras: ModuleType, data: Dataset) -> Model:
    """Regression MLP; inputs are normalised and the output de-normalised in the model."""
    features = keras.Input(shape=(10,), dtype="float32", name="features")
    normalize = keras.layers.Normalization()
    normalize.adapt(data.x_train["features"])
    x = normalize(features)
    x = keras.layers.Dense(32, activation="relu")(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    x = keras.layers.Dense(1)(x)
    progression = _denormalize(keras, x, data.y_train["progression"], "progression")
    return keras.Model({"features": features}, {"progression": progression}, name="diabetes_mlp")


WIDE_DEEP_INPUTS = {"age": 1, "sex": 1, "bmi": 1, "blood_pressure": 1, "serum": 6}


def wide_deep(keras: ModuleType, data: Dataset) -> Model:
    """Wide-and-deep network with five named inputs and two heads.

    The wide path is linear in the normalised features; the deep path is an MLP over the same
    features. Both heads read the two paths: ``progression`` (regression, in the target's units)
    and ``high_risk`` (probability that progression is above the training median).
    """
    inputs = {name: keras.Input(shape=(width,), dtype="float32", name=name)
              for name, width in WIDE_DEEP_INPUTS.items()}
    merged = keras.layers.Concatenate()(list(inputs.values()))
    normalize = keras.layers.Normalization()
    normalize.adapt(np.concatenate([data.x_train[name] for name in WIDE_DEEP_INPUTS], axis=1))
    wide = normalize(merged)
    deep = keras.layers.Dense(32, activation="relu")(wide)
    deep = keras.layers.Dense(16, activation="relu")(deep)
    both = keras.layers.Concatenate()([wide, deep])
    progression = _denormalize(keras, keras.layers.Dense(1)(both), data.y_train["progression"],
                               "progression")
    high_risk = keras.layers.Dense(1, activation="sigmoid", name="high_risk")(both)
    return keras.Model(inputs, {"progression": progression, "high_risk": high_risk},
                       name="wide_deep")


def text_classifier(keras: ModuleType, data: Dataset) -> Model:
    """Topic classifier on raw strings; tokenisation (``TextVectorization``) is in the model."""
    text = keras.Input(shape=(), dtype="string", name="text")
    vectorize = keras.layers.TextVectorization(max_tokens=4000, output_mode="tf_idf")
    vectorize.adapt(data.x_train["text"].astype(str))
    x = vectorize(text)
    x = keras.layers.Dropout(0.2)(x)
    probabilities = _classifier_head(keras, x, len(data.class_names))
    return keras.Model({"text": text}, {"probabilities": probabilities}, name="text_classifier")


def mobilenet_v2(keras: ModuleType, data: Dataset) -> Model:
    """MobileNetV2 with random weights on 224x224x3 ``uint8`` images: the compute-bound model."""
    image = keras.Input(shape=(224, 224, 3), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(image)
    backbone = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    return keras.Model({"image": image}, {"probabilities": backbone(x)}, name="mobilenet_v2")
