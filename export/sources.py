"""What ``servectl export`` accepts: a zoo name, a ``.keras``/``.h5`` file, or a SavedModel dir.

A Keras model (Keras 3 or tf-keras) is re-exported with this project's signatures. A model
whose ``name`` is a zoo name gets that zoo entry's held-out data (verification inputs, warmup
records, evaluation, int8 calibration) and its classify/regress signatures. An existing
SavedModel that is not a Keras one is copied as it is, so TF1-era graphs pass through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tf_serving_platform.export.errors import ExportError
from tf_serving_platform.models import evaluation, train, zoo
from tf_serving_platform.models.data import Arrays, Dataset

SAMPLE_ROWS = 32


@dataclass
class ExportSource:
    """A model ready to export, with the data to verify and evaluate it on when known."""

    name: str
    origin: str
    model: Any | None = None
    saved_model: Path | None = None
    spec: zoo.ZooModel | None = None
    data: Dataset | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def heads(self) -> tuple[zoo.Head, ...]:
        return self.spec.heads if self.spec else ()


def random_inputs(specs: dict[str, Any], rows: int = SAMPLE_ROWS, seed: int = 0) -> Arrays:
    """Inputs that match TensorSpecs, for models that come without data."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, spec in specs.items():
        shape = [rows] + [d if d is not None else 1 for d in list(spec.shape)[1:]]
        dtype = spec.dtype.as_numpy_dtype
        if spec.dtype.is_floating:
            arrays[name] = rng.normal(size=shape).astype(dtype)
        elif spec.dtype.is_integer or spec.dtype.is_bool:
            high = 2 if spec.dtype.is_bool else 10
            arrays[name] = rng.integers(0, high, size=shape).astype(dtype)
        else:
            arrays[name] = np.full(shape, b"example", dtype=object)
    return arrays


def _from_zoo(name: str, seed: int, progress: bool) -> ExportSource:
    trained = train.train(zoo.get(name), seed=seed, progress=progress)
    return ExportSource(name, f"zoo:{name} (seed {seed})", model=trained.model,
                        spec=trained.spec, data=trained.data, metrics=trained.metrics)


def _load_keras_file(path: Path) -> Any:
    """Keras 3 first; fall back to tf-keras for files written by Keras 2."""
    import keras
    try:
        return keras.saving.load_model(path)
    except Exception as keras3_error:
        import tf_keras
        try:
            return tf_keras.models.load_model(path)
        except Exception:
            raise ExportError(f"cannot load Keras model {path}: {keras3_error}") from None


def _from_keras(model: Any, origin: str) -> ExportSource:
    source = ExportSource(model.name, origin, model=model)
    if model.name in zoo.ZOO:
        source.spec = zoo.get(model.name)
        source.data = source.spec.load_data()
        if source.spec.epochs:
            source.metrics = evaluation.evaluate(source.heads, train.predict(
                model, source.data.x_test), source.data.y_test)
    return source


def resolve(arg: str, seed: int = zoo.DEFAULT_SEED, progress: bool = True,
            name: str | None = None) -> ExportSource:
    """Turn the command-line argument into an :class:`ExportSource`.

    Raises:
        ExportError: ``arg`` is neither a zoo name nor a loadable model path.
    """
    path = Path(arg)
    if arg in zoo.ZOO and not path.exists():
        source = _from_zoo(arg, seed, progress)
    elif path.is_dir() and (path / "saved_model.pb").exists():
        if (path / "keras_metadata.pb").exists():
            import tf_keras
            source = _from_keras(tf_keras.models.load_model(path), f"tf-keras:{path}")
        else:
            here = path.resolve()
            model_name = here.parent.name if here.name.isdigit() else here.name
            source = ExportSource(model_name, f"savedmodel:{path}", saved_model=path)
    elif path.is_file() and path.suffix in (".keras", ".h5"):
        source = _from_keras(_load_keras_file(path), f"keras:{path}")
    else:
        raise ExportError(f"unknown model {arg!r}: not a zoo model ({', '.join(zoo.ZOO)}), "
                          f"a .keras/.h5 file or a SavedModel directory")
    if name:
        source.name = name
    return source
