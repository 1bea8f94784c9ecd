"""The model zoo: one entry per model family, with its data, builder and training recipe."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tf_serving_platform.models import architectures, data

DEFAULT_SEED = 1337

HeadKind = Literal["classification", "binary", "regression"]


@dataclass(frozen=True)
class Head:
    """One output of a model and how it is trained and scored.

    A classification head outputs probabilities ``[batch, classes]``; a binary head the
    probability of the positive class ``[batch, 1]``; a regression head ``[batch, 1]`` values in
    the target's units.
    """

    output: str
    kind: HeadKind

    @property
    def loss(self) -> str:
        return {"classification": "sparse_categorical_crossentropy",
                "binary": "binary_crossentropy",
                "regression": "mean_squared_error"}[self.kind]


@dataclass(frozen=True)
class ZooModel:
    """A model family of the zoo.

    ``heads[0]`` is the primary head: its metric is the one the TFLite variant table compares,
    and the model gets a ``classify`` or ``regress`` signature for each kind of head it has.
    """

    name: str
    summary: str
    load_data: Callable[[], data.Dataset]
    build: Callable[..., architectures.Model]
    heads: tuple[Head, ...]
    epochs: int
    batch_size: int = 32
    learning_rate: float = 1e-2
    tflite: bool = True
    """Whether TFLite variants make sense (string ops are not TFLite builtins)."""


_BINARY = Head("high_risk", "binary")

ZOO: dict[str, ZooModel] = {
    m.name: m
    for m in (
        ZooModel("digits_mlp", "dense classifier on scikit-learn digits (64 float features)",
                 data.digits_features, architectures.digits_mlp,
                 (Head("probabilities", "classification"),), epochs=30),
        ZooModel("digits_cnn", "CNN on raw uint8 8x8 digit images, scaling in the model",
                 data.digits_images, architectures.digits_cnn,
                 (Head("probabilities", "classification"),), epochs=30),
        ZooModel("diabetes_mlp", "regression MLP on diabetes, in-model normalisation",
                 data.diabetes_features, architectures.diabetes_mlp,
                 (Head("progression", "regression"),), epochs=100, learning_rate=1e-3),
        ZooModel("wide_deep", "wide-and-deep, five named inputs, regression + risk heads",
                 data.diabetes_named, architectures.wide_deep,
                 (Head("progression", "regression"), _BINARY), epochs=100,
                 learning_rate=1e-3),
        ZooModel("text_classifier", "topic classifier on raw strings (TextVectorization)",
                 data.text_topics, architectures.text_classifier,
                 (Head("probabilities", "classification"),), epochs=40, tflite=False),
        ZooModel("mobilenet_v2", "MobileNetV2, random weights, 224x224x3 uint8 (benchmark)",
                 data.random_images, architectures.mobilenet_v2,
                 (Head("probabilities", "classification"),), epochs=0),
    )
}


def get(name: str) -> ZooModel:
    """Return the zoo entry ``name``.

    Raises:
        KeyError: with the list of known names, when ``name`` is not in the zoo.
    """
    try:
        return ZOO[name]
    except KeyError:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(ZOO)}") from None
