"""The clients over the Open Inference Protocol ("KServe V2"): ``protocol="v2"``.

The same API as over TensorFlow Serving's (``SyncApi``, ``AsyncApi``), spoken as V2: predict is
``infer`` (inputs by the signature's alias, ``parameters.signature_name`` for another
signature, requested outputs as the output filter), metadata and status come from the model's
V2 metadata, the model list from gRPC's RepositoryIndex. REST sends inputs as binary tensor
data (exact bytes for every dtype) and reads outputs as JSON; gRPC sends
``raw_input_contents`` and reads ``raw_output_contents``. What V2 has no words for (version
labels, classify, regress, config reloads) is INVALID_ARGUMENT or UNIMPLEMENTED, said once.
"""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import orjson

from tf_serving_platform.serving.client.core import Call, RpcRequest
from tf_serving_platform.serving.client.errors import ServingClientError
from tf_serving_platform.serving.client.queries import ModelRef, PredictQuery, invalid
from tf_serving_platform.serving.client.rest_calls import HttpRequest, read_json
from tf_serving_platform.serving.client.results import (
    ModelListing,
    ModelMetadata,
    ModelVersionStatus,
    SignatureInfo,
    TensorSpec,
)
from tf_serving_platform.serving.codec import v2 as codec_v2
from tf_serving_platform.serving.codec.dtypes import BY_NAME
from tf_serving_platform.serving.errors import ServingError

__all__ = ["V2GrpcCalls", "V2RestCalls"]

DEFAULT_SIGNATURE = "serving_default"
HEADER_LENGTH = "Inference-Header-Content-Length"
NO_EXAMPLES = ("the Open Inference Protocol has no classify or regress; call predict on the "
               "signature, or use protocol='tfserving'")
NO_RELOAD = "the Open Inference Protocol has no config reload; use protocol='tfserving' on gRPC"
NO_REST_LIST = "the Open Inference Protocol's REST API has no model list; use gRPC"


def _no_labels(ref: ModelRef) -> None:
    if ref.label is not None:
        raise invalid("the Open Inference Protocol has no version labels; give a version",
                      ref.model)


def _spec(tensor: dict) -> TensorSpec:
    numpy_name = codec_v2.DATATYPES.get(tensor.get("datatype", ""), "")
    dtype = BY_NAME.get(numpy_name)
    shape = tensor.get("shape")
    return TensorSpec(f"DT_{dtype.name.upper()}" if dtype else "DT_INVALID",
                      None if shape is None else tuple(None if d < 0 else d for d in shape))


def metadata_from_v2(doc: dict, model: str) -> ModelMetadata:
    """V2 model metadata as the clients' ``ModelMetadata``: its one signature is the one V2
    describes (``serving_default`` on this engine)."""
    try:
        versions = [int(v) for v in doc.get("versions", [])]
        signature = SignatureInfo("tensorflow/serving/predict",
                                  {t["name"]: _spec(t) for t in doc.get("inputs", [])},
                                  {t["name"]: _spec(t) for t in doc.get("outputs", [])})
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ServingClientError(grpc.StatusCode.DATA_LOSS, "Malformed model metadata in the "
                                 "answer", model) from None
    return ModelMetadata(model, max(versions, default=0), {DEFAULT_SIGNATURE: signature})


def _statuses(versions, ref: ModelRef) -> list[ModelVersionStatus]:
    """V2 names the versions that are ready: each is AVAILABLE (highest first)."""
    ready = sorted((int(v) for v in versions), reverse=True)
    if ref.version is not None:
        if ref.version not in ready:
            raise ServingClientError(grpc.StatusCode.NOT_FOUND, f"Could not find version "
                                     f"{ref.version} of model {ref.model}", ref.model)
        ready = [ref.version]
    return [ModelVersionStatus(v, "AVAILABLE") for v in ready]


def _inputs(query: PredictQuery, metadata: ModelMetadata | None) -> dict[str, np.ndarray]:
    signature = query.ref.signature_info(metadata)
    if signature is None:
        if not isinstance(query.inputs, dict):
            raise invalid("without the signature's metadata, pass a dict of arrays",
                          query.ref.model)
        return query.inputs
    query.check_output_filter(signature)
    return query.named_inputs(signature, typed=True)


def _tensors(inputs: dict[str, np.ndarray], model: str) -> list[tuple[str, str, list, bytes]]:
    tensors = []
    for alias, array in inputs.items():
        if array.dtype.kind in "SU":
            array = array.astype(object)  # BYTES: to_raw encodes str elements as UTF-8
        try:
            datatype = codec_v2.datatype_of(array)
        except ServingError as e:
            raise invalid(f"Input {alias!r}: {e.message}", model) from None
        tensors.append((alias, datatype, list(array.shape), codec_v2.to_raw(array)))
    return tensors


def _outputs_from_json(answer: tuple[int, bytes], model: str) -> dict[str, np.ndarray]:
    doc = read_json(answer, model)
    try:
        return {t["name"]: codec_v2.from_json(t["name"], t["datatype"], t["shape"], t["data"])
                for t in doc["outputs"]}
    except (KeyError, TypeError) as e:
        raise ServingClientError(grpc.StatusCode.DATA_LOSS, f"Malformed outputs in the "
                                 f"answer: {e}", model) from None
    except ServingError as e:
        raise ServingClientError(grpc.StatusCode.DATA_LOSS, e.message, model) from None


class _V2Calls:
    """What the Open Inference Protocol has no words for, on either wire."""

    def classify(self, ref: ModelRef, body: bytes) -> Call:
        raise ServingClientError(grpc.StatusCode.UNIMPLEMENTED, NO_EXAMPLES, ref.model)

    regress = classify

    def reload_config(self, config: Any) -> Call:
        raise ServingClientError(grpc.StatusCode.UNIMPLEMENTED, NO_RELOAD)


class V2RestCalls(_V2Calls):
    """The V2 REST request of each API method, and how its answer reads."""

    def needs_metadata(self, query: PredictQuery) -> bool:
        return True  # the inputs' datatypes and a bare input's name come from the signature

    def predict(self, query: PredictQuery, metadata: ModelMetadata | None) -> Call:
        ref = query.ref
        _no_labels(ref)
        tensors = _tensors(_inputs(query, metadata), ref.model)
        document: dict = {"inputs": [{"name": a, "datatype": d, "shape": s,
                                      "parameters": {"binary_data_size": len(raw)}}
                                     for a, d, s, raw in tensors]}
        if ref.signature:
            document["parameters"] = {"signature_name": ref.signature}
        if query.output_filter:
            document["outputs"] = [{"name": o} for o in query.output_filter]
        header = orjson.dumps(document)
        body = header + b"".join(raw for *_, raw in tensors)
        return Call(HttpRequest("POST", ref.v2_path("/infer"), body,
                                {HEADER_LENGTH: str(len(header))}),
                    lambda answer: _outputs_from_json(answer, ref.model), ref.model)

    def status(self, ref: ModelRef) -> Call:
        _no_labels(ref)
        return Call(HttpRequest("GET", ModelRef(ref.model).v2_path()),
                    lambda answer: _statuses(read_json(answer, ref.model).get("versions", []),
                                             ref), ref.model)

    def metadata(self, ref: ModelRef) -> Call:
        _no_labels(ref)
        return Call(HttpRequest("GET", ref.v2_path()),
                    lambda answer: metadata_from_v2(read_json(answer, ref.model), ref.model),
                    ref.model)

    def list_models(self) -> Call:
        raise ServingClientError(grpc.StatusCode.UNIMPLEMENTED, NO_REST_LIST)


def _grpc_metadata(response, model: str) -> ModelMetadata:
    def tensors(items):
        return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in items]
    return metadata_from_v2({"versions": list(response.versions),
                             "inputs": tensors(response.inputs),
                             "outputs": tensors(response.outputs)}, model)


def _grpc_outputs(response, model: str) -> dict[str, np.ndarray]:
    raw = response.raw_output_contents
    if len(raw) != len(response.outputs):
        raise ServingClientError(grpc.StatusCode.DATA_LOSS, "Malformed outputs in the answer",
                                 model)
    try:
        return {t.name: codec_v2.from_raw(t.name, t.datatype, list(t.shape), raw[i])
                for i, t in enumerate(response.outputs)}
    except ServingError as e:
        raise ServingClientError(grpc.StatusCode.DATA_LOSS, e.message, model) from None


def _listings(response) -> list[ModelListing]:
    listings: dict[str, ModelListing] = {}
    for entry in response.models:
        listing = listings.setdefault(entry.name, ModelListing(entry.name, [], {}))
        if entry.version:
            state = "AVAILABLE" if entry.state == "READY" else entry.state
            listing.versions.append(ModelVersionStatus(int(entry.version), state,
                                                       "OK" if not entry.reason else "UNKNOWN",
                                                       entry.reason))
    return list(listings.values())


class V2GrpcCalls(_V2Calls):
    """The ``inference.GRPCInferenceService`` request of each API method (tritonclient's
    stubs), and how its answer reads."""

    def __init__(self) -> None:
        from tritonclient.grpc import service_pb2

        self._pb = service_pb2

    def needs_metadata(self, query: PredictQuery) -> bool:
        return True

    def predict(self, query: PredictQuery, metadata: ModelMetadata | None) -> Call:
        ref = query.ref
        _no_labels(ref)
        request = self._pb.ModelInferRequest(
            model_name=ref.model, model_version="" if ref.version is None else str(ref.version))
        if ref.signature:
            request.parameters["signature_name"].string_param = ref.signature
        for alias, datatype, shape, raw in _tensors(_inputs(query, metadata), ref.model):
            request.inputs.add(name=alias, datatype=datatype, shape=shape)
            request.raw_input_contents.append(raw)
        for name in query.output_filter:
            request.outputs.add(name=name)
        return Call(RpcRequest("ModelInfer", request),
                    lambda response: _grpc_outputs(response, ref.model), ref.model)

    def metadata(self, ref: ModelRef) -> Call:
        _no_labels(ref)
        request = self._pb.ModelMetadataRequest(
            name=ref.model, version="" if ref.version is None else str(ref.version))
        return Call(RpcRequest("ModelMetadata", request),
                    lambda response: _grpc_metadata(response, ref.model), ref.model)

    def status(self, ref: ModelRef) -> Call:
        _no_labels(ref)
        request = self._pb.ModelMetadataRequest(name=ref.model)
        return Call(RpcRequest("ModelMetadata", request),
                    lambda response: _statuses(response.versions, ref), ref.model)

    def list_models(self) -> Call:
        return Call(RpcRequest("RepositoryIndex", self._pb.RepositoryIndexRequest()),
                    _listings, "")
