"""What the load test's requests look like: the inputs of the target's signature.

The inputs are read from the server's own signature metadata, through the project's clients
(``serving.client``: ``GET /v1/models/{m}[/versions/{v}|/labels/{l}]/metadata``, gRPC
``GetModelMetadata``, or the Open Inference Protocol's model metadata), so a load test needs
nothing but a model name: dtypes and shapes come from the model itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from tf_serving_platform.serving.client import ModelRef, RetryPolicy, ServingClientError
from tf_serving_platform.serving.client.results import ModelMetadata
from tf_serving_platform.serving.codec import TFDType, resolve
from tf_serving_platform.serving.errors import ServingError

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
V2_INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"
NO_RETRY = RetryPolicy(max_attempts=1)
"""A mistake (a wrong name, a server that is down) fails the precheck at once."""


class SignatureError(Exception):
    """The model, its version or label, or its signature cannot be used (one-line message)."""


@dataclass(frozen=True)
class InputSpec:
    """One signature input: name, dtype and shape (-1 for unknown sizes; None: unknown rank)."""

    name: str
    dtype: TFDType
    shape: tuple[int, ...] | None


def inputs_of(metadata: ModelMetadata, target: ModelRef) -> list[InputSpec]:
    """The inputs of ``target``'s signature in the metadata, sorted by name.

    Raises:
        SignatureError: the signature is missing or has an input of an unknown dtype.
    """
    found = metadata.signatures.get(target.signature_key)
    if found is None:
        known = ", ".join(sorted(metadata.signatures)) or "none"
        raise SignatureError(f"model {target.model!r} has no signature "
                             f"{target.signature_key!r} (it has: {known})")
    inputs = []
    for name, spec in sorted(found.inputs.items()):
        try:
            dtype = resolve(spec.dtype)
        except ServingError as e:
            raise SignatureError(f"input {name!r}: {e.message}") from None
        shape = None if spec.shape is None else tuple(-1 if d is None else d for d in spec.shape)
        inputs.append(InputSpec(name, dtype, shape))
    return inputs


def fetch_rest(base_url: str, target: ModelRef, timeout: float = 10) -> list[InputSpec]:
    """Reads the signature's inputs from TensorFlow Serving's REST metadata endpoint.

    Raises:
        SignatureError: the server is unreachable or answered with an error.
    """
    from tf_serving_platform.serving.client import RestClient

    url = base_url.rstrip("/") + target.rest_path("/metadata")
    try:
        with RestClient(base_url, timeout_s=timeout, retry=NO_RETRY) as client:
            metadata = client.metadata(target.model, version=target.version,
                                       label=target.label)
    except ServingClientError as e:
        status = "" if e.code is grpc.StatusCode.UNAVAILABLE else f"HTTP {e.http_status}: "
        raise SignatureError(f"GET {url}: {status}{e.message}") from None
    except ValueError as e:  # not a URL
        raise SignatureError(f"GET {url}: {e}") from None
    return inputs_of(metadata, target)


def fetch_grpc(address: str, target: ModelRef, timeout: float = 10) -> list[InputSpec]:
    """Reads the signature's inputs with gRPC ``GetModelMetadata``.

    Raises:
        SignatureError: the server is unreachable or answered with an error.
    """
    from tf_serving_platform.serving.tensorflow_protos import protos_only

    protos_only()  # the gRPC client's imports, without TensorFlow's runtime
    from tf_serving_platform.serving.client import GrpcClient

    try:
        with GrpcClient(address, timeout_s=timeout, retry=NO_RETRY) as client:
            metadata = client.metadata(target.model, version=target.version,
                                       label=target.label)
    except ServingClientError as e:
        raise SignatureError(f"gRPC GetModelMetadata at {address}: {e.code.name}: "
                             f"{e.message}") from None
    return inputs_of(metadata, target)


def fetch_v2(rest_url: str | None, grpc_address: str | None, target: ModelRef,
             timeout: float = 10) -> list[InputSpec]:
    """Reads the inputs from the Open Inference Protocol's model metadata (REST when given,
    else gRPC).

    Raises:
        SignatureError: the server is unreachable, answered with an error, or the target
            names a label (V2 has none).
    """
    if target.label:
        raise SignatureError("the Open Inference Protocol has no version labels; give a "
                             "version")
    if rest_url:
        from tf_serving_platform.serving.client import RestClient

        client = RestClient(rest_url, timeout_s=timeout, retry=NO_RETRY, protocol="v2")
    else:
        from tf_serving_platform.serving.tensorflow_protos import protos_only

        protos_only()
        from tf_serving_platform.serving.client import GrpcClient

        client = GrpcClient(grpc_address, timeout_s=timeout, retry=NO_RETRY, protocol="v2")
    try:
        with client:
            metadata = client.metadata(target.model, version=target.version)
    except ServingClientError as e:
        raise SignatureError(f"V2 model metadata of {target.model!r}: {e}") from None
    if target.signature_key != "serving_default":
        raise SignatureError("the Open Inference Protocol describes serving_default only; "
                             f"{target.signature_key!r} cannot be load-tested over it")
    return inputs_of(metadata, target)
