"""TensorFlow Serving's gRPC API as ``Call`` objects: request protos and answers, through the
shared codec.

Inputs travel as ``tensor_content`` (one copy of the array's bytes); outputs are read from typed
fields or ``tensor_content``, whichever the server sent. Importing this module imports
TensorFlow's protobuf classes (through ``tensorflow-serving-api``).
"""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format, text_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from tf_serving_platform.serving import codec
from tf_serving_platform.serving.client.core import Call, RpcRequest
from tf_serving_platform.serving.client.errors import ServingClientError, client_errors
from tf_serving_platform.serving.client.queries import ModelRef, PredictQuery, invalid
from tf_serving_platform.serving.client.results import (
    ModelMetadata,
    classify_result,
    metadata_from_json,
    status_from_json,
)
from tf_serving_platform.serving.codec.examples import decode_examples_json

__all__ = ["GrpcCalls", "RpcRequest", "model_spec"]

SIGNATURE_DEF = "signature_def"
NO_MODEL_LIST = ("TensorFlow Serving's gRPC API has no model list; use RestClient.list_models "
                 "(GET /v1/models, the embedded engine's)")


def model_spec(ref: ModelRef) -> model_pb2.ModelSpec:
    """The ``ModelSpec`` of a reference: name, signature, and version or label."""
    spec = model_pb2.ModelSpec(name=ref.model, signature_name=ref.signature or "")
    if ref.version is not None:
        spec.version.value = ref.version
    elif ref.label is not None:
        spec.version_label = ref.label
    return spec


def _as_dict(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _outputs(response: predict_pb2.PredictResponse) -> dict[str, np.ndarray]:
    return {alias: codec.tensor_proto_to_ndarray(proto)
            for alias, proto in response.outputs.items()}


def _metadata(response: get_model_metadata_pb2.GetModelMetadataResponse,
              model: str) -> ModelMetadata:
    signatures = get_model_metadata_pb2.SignatureDefMap()
    if SIGNATURE_DEF in response.metadata:
        response.metadata[SIGNATURE_DEF].Unpack(signatures)
    return metadata_from_json({"model_spec": _as_dict(response.model_spec),
                               "metadata": {SIGNATURE_DEF: _as_dict(signatures)}}, model)


def _check_reloaded(response: model_management_pb2.ReloadConfigResponse) -> None:
    if response.status.error_code:  # the server reports it as the call's status too
        raise ServingClientError(grpc.StatusCode.UNKNOWN, response.status.error_message)


def _server_config(config: Any) -> model_server_config_pb2.ModelServerConfig:
    if isinstance(config, model_server_config_pb2.ModelServerConfig):
        return config
    if not isinstance(config, str):
        raise invalid("config must be a ModelServerConfig or its text format. Received: "
                      f"{type(config).__name__}", "")
    try:
        return text_format.Parse(config, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as e:
        raise invalid(f"Cannot parse the model server config: {e}", "") from None


class GrpcCalls:
    """Builds the gRPC request of each API method and reads its answer."""

    def needs_metadata(self, query: PredictQuery) -> bool:
        # A bare array needs its input's alias, Python values their input's dtype.
        return not isinstance(query.inputs, dict) or bool(query.untyped)

    def predict(self, query: PredictQuery, metadata: ModelMetadata | None) -> Call:
        ref = query.ref
        inputs = query.inputs
        if self.needs_metadata(query):
            signature = ref.signature_info(metadata)
            if signature is None:  # TensorFlow Serving's Predict answer for it
                raise ServingClientError(grpc.StatusCode.FAILED_PRECONDITION,
                                         f'Serving signature key "{ref.signature_key}" not '
                                         "found.", ref.model)
            inputs = query.named_inputs(signature, typed=True)
        assert isinstance(inputs, dict)
        request = predict_pb2.PredictRequest(model_spec=model_spec(ref),
                                             output_filter=query.output_filter)
        for alias, array in inputs.items():
            with client_errors(ref.model):
                request.inputs[alias].CopyFrom(codec.ndarray_to_tensor_proto(array))
        return Call(RpcRequest("Predict", request), _outputs, ref.model)

    def classify(self, ref: ModelRef, body: bytes) -> Call:
        with client_errors(ref.model):
            _, model_input = decode_examples_json(body)
        request = classification_pb2.ClassificationRequest(model_spec=model_spec(ref),
                                                           input=model_input)
        return Call(RpcRequest("Classify", request), lambda response: classify_result(
            [[(c.label, c.score) for c in row.classes]
             for row in response.result.classifications], ref.model), ref.model)

    def regress(self, ref: ModelRef, body: bytes) -> Call:
        with client_errors(ref.model):
            _, model_input = decode_examples_json(body)
        request = regression_pb2.RegressionRequest(model_spec=model_spec(ref), input=model_input)
        return Call(RpcRequest("Regress", request), lambda response: np.array(
            [r.value for r in response.result.regressions], dtype=np.float32), ref.model)

    def status(self, ref: ModelRef) -> Call:
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_spec(ref))
        return Call(RpcRequest("GetModelStatus", request),
                    lambda response: status_from_json(_as_dict(response), ref.model), ref.model)

    def metadata(self, ref: ModelRef) -> Call:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=model_spec(ref), metadata_field=[SIGNATURE_DEF])
        return Call(RpcRequest("GetModelMetadata", request),
                    lambda response: _metadata(response, ref.model), ref.model)

    def list_models(self) -> Call:
        raise ServingClientError(grpc.StatusCode.UNIMPLEMENTED, NO_MODEL_LIST)

    def reload_config(self, config: Any) -> Call:
        request = model_management_pb2.ReloadConfigRequest(config=_server_config(config))
        return Call(RpcRequest("HandleReloadConfigRequest", request), _check_reloaded, "")
