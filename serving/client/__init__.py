"""Python clients for TensorFlow Serving's REST and gRPC APIs (the embedded engine's too).

    >>> from serving.client import RestClient, GrpcClient
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
    "RestClient": "serving.client.rest",
    "AsyncRestClient": "serving.client.rest",
    "GrpcClient": "serving.client.grpc_client",
    "AsyncGrpcClient": "serving.client.grpc_client",
    "ServingClientError": "serving.client.errors",
    "ModelRef": "serving.client.queries",
    "RetryPolicy": "serving.client.retry",
    "ClassifyResult": "serving.client.results",
    "ModelListing": "serving.client.results",
    "ModelMetadata": "serving.client.results",
    "ModelVersionStatus": "serving.client.results",
    "SignatureInfo": "serving.client.results",
    "TensorSpec": "serving.client.results",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'serving.client' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
