"""TensorFlow's protocol buffers without the TensorFlow runtime.

``tensorflow_serving.apis.*_pb2`` import ``tensorflow.core.framework.*_pb2``, and any
``tensorflow.*`` import first runs ``tensorflow/__init__.py``, which loads the whole runtime:
about 3 s and 290-650 MB per process, for processes that only need a few message classes (the
engine's front-end processes, Locust's processes, ``servectl loadtest``). The ``*_pb2`` modules
are plain generated code, so such a process registers ``tensorflow`` as a bare package whose
path is the real one: the proto modules import in 0.2 s and the runtime never loads.

Any use of TensorFlow proper afterwards is a bug, and fails loudly (``ProtosOnly``). Where
TensorFlow is already imported, the real modules are used as they are.
"""

from __future__ import annotations

import importlib.util
import sys
import types


class ProtosOnly(types.ModuleType):
    """``tensorflow`` as a plain package of its proto modules: its ``__init__`` never runs."""

    def __getattr__(self, name: str):
        raise AttributeError(f"tensorflow.{name}: this process loads TensorFlow's protocol "
                             "buffers only, not TensorFlow")


def protos_only() -> None:
    """Makes ``import tensorflow.core...`` find the proto modules without TensorFlow.

    A no-op where TensorFlow is already imported, or not installed (the proto imports then say
    what is missing).
    """
    if "tensorflow" in sys.modules:
        return
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or spec.submodule_search_locations is None:
        return
    package = ProtosOnly("tensorflow")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    sys.modules["tensorflow"] = package
