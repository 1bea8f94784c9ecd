"""TensorFlow Serving's protobuf modules, without starting the TensorFlow runtime.

``tensorflow_serving.apis.predict_pb2`` imports ``tensorflow.core.framework.tensor_pb2``, and
any ``tensorflow.*`` import first runs ``tensorflow/__init__.py``: measured here, 2.8 s and
650 MB per process under gevent, for a load generator that only needs a few message classes.
The ``*_pb2`` modules themselves are plain generated protobuf code, so a load generator
process registers an empty ``tensorflow`` package whose path is the real one: the generated
modules import (0.2 s, 46 MB) and the TensorFlow runtime never loads.

Only for processes that never use TensorFlow itself (Locust processes, ``servectl loadtest``):
afterwards ``import tensorflow`` gives that empty package. Where TensorFlow is already
imported, the real modules are used as they are.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import types
from types import SimpleNamespace


@functools.cache
def serving_apis() -> SimpleNamespace:
    """``predict_pb2`` and ``get_model_metadata_pb2``, as attributes of one namespace.

    Raises:
        ImportError: TensorFlow (whose ``.proto`` modules are needed) is not installed.
    """
    if "tensorflow" not in sys.modules:
        spec = importlib.util.find_spec("tensorflow")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("the gRPC load test needs the tensorflow package's protos "
                              "(pip install tensorflow-serving-api)")
        package = types.ModuleType("tensorflow")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["tensorflow"] = package
    from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

    return SimpleNamespace(predict_pb2=predict_pb2,
                           get_model_metadata_pb2=get_model_metadata_pb2)
