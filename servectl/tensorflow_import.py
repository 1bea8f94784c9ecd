"""Importing TensorFlow for a command, without its C++ start-up chatter on the terminal, and
for the engine without Keras."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from contextlib import contextmanager

KERAS_PACKAGES = ("keras", "tf_keras")


class _RefusedLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        raise ImportError(f"{module.__name__} is not imported while TensorFlow loads",
                          name=module.__name__)


class _KerasRefused(importlib.abc.MetaPathFinder):
    """Finds the Keras packages where they are (TensorFlow reads their location) but refuses to
    run them."""

    def find_spec(self, name, path=None, target=None):
        if name not in KERAS_PACKAGES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None:
            spec.loader = _RefusedLoader()
        return spec


@contextmanager
def _without_keras():
    """``tensorflow/__init__.py`` imports ``keras.src.optimizers`` eagerly (for Keras's
    SavedModel registrations; it passes on an ImportError), which imports all of Keras and with
    it matplotlib and scikit-learn: 1.5-2 s of a 4 s import here. The engine runs SavedModels as
    graphs, by tensor name, as TensorFlow Serving's C++ does, and never needs them. Keras stays
    importable afterwards, at its own cost."""
    finder = _KerasRefused()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def import_tensorflow(keras: bool = True) -> None:
    """Import TensorFlow with its oneDNN/CUDA start-up lines kept off stderr.

    Those lines are written to file descriptor 2 before TensorFlow's log level applies, so the
    import and the first device probe run with fd 2 pointed at /dev/null. An import error is
    still raised (and printed) after fd 2 is restored. Commands call this after checking their
    arguments, so a usage error answers without paying for the import. ``keras=False`` (the
    engine) leaves Keras out of TensorFlow's import (see ``_without_keras``).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        if keras or "tensorflow" in sys.modules:
            import tensorflow as tf
        else:
            with _without_keras():
                import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
