"""The Open Inference Protocol ("KServe V2") over the one service: what its REST and gRPC front
ends share (:mod:`serving.engine.rest_v2`, :mod:`serving.engine.grpc_v2`).

A V2 inference is a Predict: its inputs go by the signature's aliases, ``parameters``'s
``signature_name`` picks a signature other than ``serving_default``, requested outputs are the
``output_filter``. So V2 calls pass TensorFlow Serving's own validation, merge into the same
batches as its API's calls for the same model, version and signature, and are counted,
logged and traced the same way, under the API label ``ModelInfer``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import metadata as package_metadata

import grpc

from tf_serving_platform.serving.codec import v2 as codec_v2
from tf_serving_platform.serving.codec.dtypes import BY_ENUM
from tf_serving_platform.serving.engine.calls import ModelSpec, PredictCall, PredictResult
from tf_serving_platform.serving.engine.signature import DEFAULT_SIGNATURE
from tf_serving_platform.serving.errors import ServingError, invalid_argument

API = "ModelInfer"
PLATFORM = "tensorflow_savedmodel"
SERVER_NAME = "servectl"
EXTENSIONS = ("binary_tensor_data",)
INT64_MAX = 2**63 - 1


@functools.cache
def server_version() -> str:
    try:
        return package_metadata.version("tf-serving-platform")
    except package_metadata.PackageNotFoundError:
        return "unknown"


def version_number(text: str | None) -> int | None:
    """A V2 model version ("" or absent: the latest)."""
    if not text:
        return None
    if not text.isdigit() or int(text) > INT64_MAX:
        raise invalid_argument(f"model version must be a number; got '{text}'")
    return int(text)


def signature_name(parameters: Mapping) -> str:
    name = parameters.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid_argument("parameter 'signature_name' must be a string")
    return name


def infer_call(model: str, version: str | None, inputs: dict, outputs: tuple[str, ...],
               parameters: Mapping, deadline: float | None) -> PredictCall:
    if not inputs:
        raise invalid_argument("an inference request needs at least one input")
    spec = ModelSpec(model, version_number(version), None, signature_name(parameters))
    return PredictCall(spec, inputs, outputs, deadline=deadline)


def _tensor(alias: str, info) -> dict:
    dtype = BY_ENUM.get(info.dtype)
    numpy_name = dtype.numpy_name if dtype else ""
    datatype = codec_v2.BY_NUMPY.get(numpy_name, dtype.name.upper() if dtype else "INVALID")
    shape = [-1] if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim]
    return {"name": alias, "datatype": datatype, "shape": shape}


async def model_metadata(service, model: str, version: str | None) -> dict:
    """``{"name", "versions", "platform", "inputs", "outputs"}`` of the version that answers,
    its ``serving_default`` signature's tensors by alias (its first signature without one)."""
    served, signature_defs = await service.metadata(ModelSpec(model, version_number(version)))
    key = DEFAULT_SIGNATURE if DEFAULT_SIGNATURE in signature_defs else next(
        (k for k in sorted(signature_defs) if not k.startswith("__")), None)
    signature = signature_defs[key] if key else None
    statuses = await service.status(model)
    return {"name": model,
            "versions": [str(s.version) for s in statuses if s.state == "AVAILABLE"],
            "platform": PLATFORM,
            "inputs": [_tensor(a, i) for a, i in sorted(signature.inputs.items())]
            if signature else [],
            "outputs": [_tensor(a, i) for a, i in sorted(signature.outputs.items())]
            if signature else []}


async def model_ready(service, model: str, version: str | None) -> bool:
    """Whether the model (or that version) has an AVAILABLE version; NOT_FOUND for a model
    the server does not know."""
    number = version_number(version)
    try:
        statuses = await service.status(model, number)
    except ServingError as e:
        if e.code == grpc.StatusCode.NOT_FOUND and number is not None:
            return False  # a version the server never saw: the model exists, not ready
        raise
    return any(s.state == "AVAILABLE" for s in statuses)


def outputs_of(result: PredictResult) -> list[tuple[str, str, list[int], object]]:
    """``(name, datatype, shape, array)`` of each output, in the signature's order."""
    return [(name, codec_v2.datatype_of(array), list(array.shape), array)
            for name, array in result.outputs.items()]
