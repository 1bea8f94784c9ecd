"""Python clients for TensorFlow Serving's REST and gRPC APIs (the embedded engine's too).

    >>> from tf_serving_platform.serving.client import RestClient, GrpcClient
    >>> RestClient("http://localhost:8501").predict("half_plus_two", {"x": [1.0]})
    {'y': array([2.5], dtype=float32)}

``RestClient`` / ``AsyncRestClient`` (no TensorFlow import) and ``GrpcClient`` / ``AsyncGrpcClient``
share one API (``serving.client.api.SyncApi``), one error type (``ServingClientError``, with a
canonical gRPC code on both wires) and one ``RetryPolicy``. Names are imported on first use, so
``from serving.client import RestClient`` never loads the gRPC stubs (and TensorFlow with them).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RestClient": "tf_serving_platform.serving.client.rest",
    "AsyncRestClient": "tf_serving_platform.serving.client.rest",
    "GrpcClient": "tf_serving_platform.serving.client.grpc_client",
    "AsyncGrpcClient": "tf_serving_platform.serving.client.grpc_client",
    "ServingClientError": "tf_serving_platform.serving.client.errors",
    "ModelRef": "tf_serving_platform.serving.client.queries",
    "RetryPolicy": "tf_serving_platform.serving.client.retry",
    "ClassifyResult": "tf_serving_platform.serving.client.results",
    "ModelListing": "tf_serving_platform.serving.client.results",
    "ModelMetadata": "tf_serving_platform.serving.client.results",
    "ModelVersionStatus": "tf_serving_platform.serving.client.results",
    "SignatureInfo": "tf_serving_platform.serving.client.results",
    "TensorSpec": "tf_serving_platform.serving.client.results",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
