"""Training a zoo model: fixed seed, a progress bar, held-out evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import keras
import numpy as np
from tqdm.auto import tqdm

from tf_serving_platform.models import evaluation
from tf_serving_platform.models.data import Arrays, Dataset
from tf_serving_platform.models.zoo import DEFAULT_SEED, ZooModel


@dataclass
class TrainedModel:
    """A trained in-memory model with the data split it was trained and evaluated on."""

    spec: ZooModel
    model: Any
    data: Dataset
    metrics: dict[str, float]
    seed: int


def _epoch_progress(keras_module: ModuleType, bar: tqdm) -> Any:
    """One tqdm bar over epochs (Keras' own bar is per batch and floods logs)."""
    def advance(epoch: int, logs: dict | None) -> None:
        bar.set_postfix(loss=f"{(logs or {}).get('loss', float('nan')):.4f}")
        bar.update(1)
    return keras_module.callbacks.LambdaCallback(on_epoch_end=advance)


def fit_targets(spec: ZooModel, y: Arrays) -> Arrays:
    """Targets shaped as each head's output: class ids ``[n]``, other heads ``[n, 1]``."""
    return {h.output: y[h.output] if h.kind == "classification"
            else y[h.output].reshape(-1, 1) for h in spec.heads}


def compile_and_fit(spec: ZooModel, model: Any, data: Dataset, epochs: int,
                    keras_module: ModuleType = keras, progress: bool = True,
                    learning_rate: float | None = None) -> None:
    """Compile with the zoo recipe (or another learning rate) and fit on the training split."""
    model.compile(optimizer=keras_module.optimizers.Adam(learning_rate or spec.learning_rate),
                  loss={h.output: h.loss for h in spec.heads})
    with tqdm(total=epochs, desc=f"train {model.name}", unit="epoch", disable=not progress,
              leave=False) as bar:
        model.fit(data.x_train, fit_targets(spec, data.y_train), epochs=epochs,
                  batch_size=spec.batch_size, verbose=0, shuffle=True,
                  callbacks=[_epoch_progress(keras_module, bar)])


def predict(model: Any, x: Arrays) -> dict[str, np.ndarray]:
    """Outputs of ``model`` on ``x`` as numpy arrays keyed by output name."""
    return {k: np.asarray(v) for k, v in model.predict(x, verbose=0, batch_size=256).items()}


def train(spec: ZooModel, seed: int = DEFAULT_SEED, progress: bool = True) -> TrainedModel:
    """Build, train and evaluate ``spec`` with Keras 3, reproducibly for a given ``seed``."""
    keras.utils.set_random_seed(seed)
    data = spec.load_data()
    model = spec.build(keras, data)
    metrics: dict[str, float] = {}
    if spec.epochs:
        compile_and_fit(spec, model, data, spec.epochs, progress=progress)
        metrics = evaluation.evaluate(spec.heads, predict(model, data.x_test), data.y_test)
    return TrainedModel(spec, model, data, metrics, seed)
