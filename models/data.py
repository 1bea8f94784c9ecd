"""Data sets the zoo trains on: only data that ships inside a package or this repository.

Nothing is downloaded at run time. Every loader returns the same train/held-out split every
time (``SPLIT_SEED``), whatever seed training uses, so the metrics of two versions of a model
are measured on the same held-out examples. Inputs come in their *natural* form (raw pixel
counts, ``uint8`` images, years and millimetres, raw strings): the models do their own
preprocessing.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes, load_digits
from sklearn.model_selection import train_test_split

TEXT_CORPUS = Path(__file__).parent / "data" / "text_corpus.tsv"
HELD_OUT_FRACTION = 0.25
SPLIT_SEED = 1337

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Dataset:
    """A train/held-out split; inputs and targets are keyed by the model's input/output names."""

    x_train: Arrays
    y_train: Arrays
    x_test: Arrays
    y_test: Arrays
    class_names: tuple[str, ...] = ()

    @property
    def num_test(self) -> int:
        return len(next(iter(self.y_test.values())))


def _split(x: Arrays, y: Arrays, stratify: np.ndarray | None) -> tuple[Arrays, ...]:
    """Split every array of ``x`` and ``y`` with one shared permutation."""
    index = np.arange(len(next(iter(y.values()))))
    train, test = train_test_split(
        index, test_size=HELD_OUT_FRACTION, random_state=SPLIT_SEED, stratify=stratify
    )
    pick = lambda arrays, rows: {k: v[rows] for k, v in arrays.items()}  # noqa: E731
    return pick(x, train), pick(y, train), pick(x, test), pick(y, test)


def digits_features() -> Dataset:
    """scikit-learn digits as 64 float pixel intensities in [0, 16]."""
    digits = load_digits()
    labels = digits.target.astype(np.int64)
    parts = _split({"pixels": digits.data.astype(np.float32)}, {"probabilities": labels},
                   labels)
    return Dataset(*parts, class_names=tuple(str(d) for d in range(10)))


def digits_images() -> Dataset:
    """scikit-learn digits as raw 8x8x1 ``uint8`` images in [0, 255], as a camera gives them."""
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., np.newaxis]
    labels = digits.target.astype(np.int64)
    parts = _split({"image": images}, {"probabilities": labels}, labels)
    return Dataset(*parts, class_names=tuple(str(d) for d in range(10)))


def diabetes_features() -> Dataset:
    """Diabetes progression from ten raw clinical measurements (years, mm Hg, mg/dl, ...)."""
    data = load_diabetes(scaled=False)
    parts = _split({"features": data.data.astype(np.float32)},
                   {"progression": data.target.astype(np.float32)}, None)
    return Dataset(*parts)


def diabetes_named() -> Dataset:
    """Diabetes as several named inputs, with a regression and a binary classification target.

    ``high_risk`` is 1 when progression is above the training median, so the two heads of the
    wide-and-deep model learn related but different tasks.
    """
    data = load_diabetes(scaled=False)
    x = data.data.astype(np.float32)
    inputs = {
        "age": x[:, 0:1],
        "sex": x[:, 1:2],
        "bmi": x[:, 2:3],
        "blood_pressure": x[:, 3:4],
        "serum": x[:, 4:10],
    }
    target = data.target.astype(np.float32)
    x_train, y_train, x_test, y_test = _split(inputs, {"progression": target}, None)
    threshold = np.median(y_train["progression"])
    for y in (y_train, y_test):
        y["high_risk"] = (y["progression"] > threshold).astype(np.float32)
    return Dataset(x_train, y_train, x_test, y_test, class_names=("low", "high"))


def text_topics() -> Dataset:
    """Short sentences labelled with one of four topics, from the corpus kept in this repo."""
    with TEXT_CORPUS.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    class_names = tuple(sorted({row["label"] for row in rows}))
    texts = np.array([row["text"] for row in rows], dtype=object)
    labels = np.array([class_names.index(row["label"]) for row in rows], dtype=np.int64)
    parts = _split({"text": texts}, {"probabilities": labels}, labels)
    return Dataset(*parts, class_names=class_names)


def random_images(count: int = 32, size: int = 224) -> Dataset:
    """Random ``uint8`` RGB images: the benchmark model has random weights, so any input does."""
    rng = np.random.default_rng(SPLIT_SEED)
    images = rng.integers(0, 256, size=(count, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 1000, size=count, dtype=np.int64)
    half = count // 2
    return Dataset({"image": images[:half]}, {"probabilities": labels[:half]},
                   {"image": images[half:]}, {"probabilities": labels[half:]})
