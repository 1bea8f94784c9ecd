"""What to call (model, version or label, signature) and what its inputs look like.

The inputs are read from the server's own signature metadata
(``GET /v1/models/{m}[/versions/{v}|/labels/{l}]/metadata`` or gRPC ``GetModelMetadata``), so
a load test needs nothing but a model name: dtypes and shapes come from the model itself.
Both wires are parsed by one function, since the gRPC answer is turned into the same JSON
document the REST one is.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from serving.codec import TFDType, resolve
from serving.errors import ServingError

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
METADATA_METHOD = "/tensorflow.serving.PredictionService/GetModelMetadata"
V2_INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"


class SignatureError(Exception):
    """The model, its version or label, or its signature cannot be used (one-line message)."""


@dataclass(frozen=True)
class Target:
    """Which servable the requests go to.

    Attributes:
        model: the model name.
        version: a version number, or None for the latest (or the label).
        label: a version label (``stable``, ``canary``), or None.
        signature: the signature key; TensorFlow Serving's default is ``serving_default``.
    """

    model: str
    version: int | None = None
    label: str | None = None
    signature: str = "serving_default"

    def rest_path(self, suffix: str) -> str:
        """``/v1/models/m[/versions/v|/labels/l]`` + ``suffix`` (``:predict``, ``/metadata``)."""
        path = f"/v1/models/{self.model}"
        if self.version is not None:
            path += f"/versions/{self.version}"
        elif self.label:
            path += f"/labels/{self.label}"
        return path + suffix

    def v2_path(self, suffix: str = "") -> str:
        """``/v2/models/m[/versions/v]`` + ``suffix`` (``/infer``): the Open Inference
        Protocol has no labels."""
        path = f"/v2/models/{self.model}"
        return (f"{path}/versions/{self.version}" if self.version is not None else path) + suffix

    def fill_model_spec(self, spec: Any) -> None:
        """Writes the target into a ``tensorflow.serving.ModelSpec`` message."""
        spec.name = self.model
        spec.signature_name = self.signature
        if self.version is not None:
            spec.version.value = self.version
        elif self.label:
            spec.version_label = self.label


@dataclass(frozen=True)
class InputSpec:
    """One signature input: name, dtype and shape (-1 for unknown sizes; None: unknown rank)."""

    name: str
    dtype: TFDType
    shape: tuple[int, ...] | None


def parse_inputs(signature_defs: dict[str, Any], target: Target) -> list[InputSpec]:
    """The inputs of ``target.signature`` in a ``SignatureDefMap`` JSON document.

    Raises:
        SignatureError: the signature is missing or has an input of an unknown dtype.
    """
    found = signature_defs.get("signature_def", {}).get(target.signature)
    if found is None:
        known = ", ".join(sorted(signature_defs.get("signature_def", {}))) or "none"
        raise SignatureError(f"model {target.model!r} has no signature {target.signature!r} "
                             f"(it has: {known})")
    inputs = []
    for name, info in sorted(found.get("inputs", {}).items()):
        shape_info = info.get("tensor_shape", {})
        shape = None if shape_info.get("unknown_rank") else tuple(
            int(d.get("size", -1)) for d in shape_info.get("dim", []))
        try:
            dtype = resolve(info.get("dtype", ""))
        except ServingError as e:
            raise SignatureError(f"input {name!r}: {e.message}") from None
        inputs.append(InputSpec(name, dtype, shape))
    return inputs


def fetch_rest(base_url: str, target: Target, timeout: float = 10) -> list[InputSpec]:
    """Reads the signature's inputs from TensorFlow Serving's REST metadata endpoint.

    Raises:
        SignatureError: the server is unreachable or answered with an error.
    """
    url = base_url.rstrip("/") + target.rest_path("/metadata")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            document = json.loads(response.read())
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")
        with contextlib.suppress(ValueError, KeyError, TypeError):  # not TF Serving's JSON
            detail = json.loads(detail)["error"]
        raise SignatureError(f"GET {url}: HTTP {e.code}: {detail}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise SignatureError(f"GET {url}: {getattr(e, 'reason', e)}") from None
    return parse_inputs(document.get("metadata", {}).get("signature_def", {}), target)


def fetch_grpc(address: str, target: Target, timeout: float = 10) -> list[InputSpec]:
    """Reads the signature's inputs with gRPC ``GetModelMetadata``.

    Raises:
        SignatureError: the server is unreachable or answered with an error.
    """
    import grpc
    from google.protobuf import json_format

    from loadtest.protos import serving_apis

    api = serving_apis().get_model_metadata_pb2
    request = api.GetModelMetadataRequest(metadata_field=["signature_def"])
    target.fill_model_spec(request.model_spec)
    request.model_spec.ClearField("signature_name")
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(METADATA_METHOD,
                                   request_serializer=api.GetModelMetadataRequest.SerializeToString,
                                   response_deserializer=api.GetModelMetadataResponse.FromString)
        try:
            response = call(request, timeout=timeout)
        except grpc.RpcError as e:
            raise SignatureError(f"gRPC GetModelMetadata at {address}: {e.code().name}: "
                                 f"{e.details()}") from None
    signature_map = api.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    document = json_format.MessageToDict(signature_map, preserving_proto_field_name=True)
    return parse_inputs(document, target)


def fetch_v2(rest_url: str | None, grpc_address: str | None, target: Target,
             timeout: float = 10) -> list[InputSpec]:
    """Reads the inputs from the Open Inference Protocol's model metadata (REST when given,
    else gRPC), through the project's client.

    Raises:
        SignatureError: the server is unreachable, answered with an error, or the target
            names a label (V2 has none).
    """
    from serving.client import ServingClientError

    if target.label:
        raise SignatureError("the Open Inference Protocol has no version labels; give a "
                             "version")
    if rest_url:
        from serving.client import RestClient

        client = RestClient(rest_url, timeout_s=timeout, protocol="v2")
    else:
        from loadtest.protos import serving_apis

        serving_apis()  # TensorFlow's protos without its runtime (the gRPC client's imports)
        from serving.client import GrpcClient

        client = GrpcClient(grpc_address, timeout_s=timeout, protocol="v2")
    try:
        with client:
            metadata = client.metadata(target.model, version=target.version)
    except ServingClientError as e:
        raise SignatureError(f"V2 model metadata of {target.model!r}: {e}") from None
    signature = metadata.signatures.get("serving_default")
    if target.signature != "serving_default" or signature is None:
        raise SignatureError("the Open Inference Protocol describes serving_default only; "
                             f"{target.signature!r} cannot be load-tested over it")
    return [InputSpec(name, resolve(spec.dtype), None if spec.shape is None else tuple(
        -1 if d is None else d for d in spec.shape))
        for name, spec in sorted(signature.inputs.items())]
