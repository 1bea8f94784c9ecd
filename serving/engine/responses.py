"""Results -> TensorFlow Serving's response protos, shared by the gRPC and REST front ends.

REST prints the status and metadata protos as JSON; gRPC returns them as they are, so the two
front ends can never disagree on what a response contains.
"""

from __future__ import annotations

import json

from google.protobuf import json_format
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
    status_pb2,
)

from tf_serving_platform.serving import codec
from tf_serving_platform.serving.engine.calls import (
    ClassifyResult,
    ModelListing,
    PredictResult,
    RegressResult,
    Served,
    VersionStatus,
)

SIGNATURE_DEF_FIELD = "signature_def"


def model_spec(served: Served) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=served.name, signature_name=served.signature_name)
    spec.version.value = served.version
    return spec


def predict_response(result: PredictResult,
                     tensor_content: bool = False) -> predict_pb2.PredictResponse:
    """Typed ``*_val`` fields by default, as TensorFlow Serving answers."""
    response = predict_pb2.PredictResponse(model_spec=model_spec(result.served))
    for name, value in result.outputs.items():
        response.outputs[name].CopyFrom(codec.ndarray_to_tensor_proto(value, tensor_content))
    return response


def classification_result(result: ClassifyResult) -> classification_pb2.ClassificationResult:
    out = classification_pb2.ClassificationResult()
    for i in range(result.num_examples):
        classification = out.classifications.add()
        width = (result.scores if result.scores is not None else result.classes).shape[1]
        for j in range(width):
            entry = classification.classes.add()
            if result.classes is not None:
                label = result.classes[i, j]
                entry.label = label.decode("utf-8", "replace") if isinstance(label, bytes) \
                    else str(label)
            if result.scores is not None:
                entry.score = float(result.scores[i, j])
    return out


def regression_result(result: RegressResult) -> regression_pb2.RegressionResult:
    out = regression_pb2.RegressionResult()
    for value in result.values.tolist():
        out.regressions.add(value=value)
    return out


def classify_response(result: ClassifyResult) -> classification_pb2.ClassificationResponse:
    return classification_pb2.ClassificationResponse(model_spec=model_spec(result.served),
                                                     result=classification_result(result))


def regress_response(result: RegressResult) -> regression_pb2.RegressionResponse:
    return regression_pb2.RegressionResponse(model_spec=model_spec(result.served),
                                             result=regression_result(result))


def multi_inference_response(results: list) -> inference_pb2.MultiInferenceResponse:
    response = inference_pb2.MultiInferenceResponse()
    for result in results:
        entry = response.results.add(model_spec=model_spec(result.served))
        if isinstance(result, ClassifyResult):
            entry.classification_result.CopyFrom(classification_result(result))
        else:
            entry.regression_result.CopyFrom(regression_result(result))
    return response


def metadata_response(served: Served, signature_defs: dict
                      ) -> get_model_metadata_pb2.GetModelMetadataResponse:
    response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=model_spec(served))
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, value in signature_defs.items():
        signature_map.signature_def[key].CopyFrom(value)
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response


def status_response(statuses: list[VersionStatus]
                    ) -> get_model_status_pb2.GetModelStatusResponse:
    response = get_model_status_pb2.GetModelStatusResponse()
    for s in statuses:
        response.model_version_status.add(
            version=s.version, state=get_model_status_pb2.ModelVersionStatus.State.Value(s.state),
            status=status_pb2.StatusProto(error_code=error_codes_pb2.Code.Value(s.error_code),
                                          error_message=s.error_message))
    return response


def _to_json_dict(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def status_json(response: get_model_status_pb2.GetModelStatusResponse) -> bytes:
    """Protobuf's JSON printing, as ``http_rest_api_util.cc`` does (1-space indent)."""
    return json_format.MessageToJson(response, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True,
                                     indent=1).encode()


def models_json(listings: list[ModelListing]) -> bytes:
    """``{"models": [{"name", "model_version_status": [...], "version_labels": {...}}]}``:
    each model in the shape of its status response, plus its name and labels (as
    ``ModelConfig.version_labels`` spells them)."""
    models = [{"name": listing.name,
               **_to_json_dict(status_response(listing.versions)),
               "version_labels": listing.labels} for listing in listings]
    return json.dumps({"models": models}, indent=1).encode()


def metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> bytes:
    """``{"model_spec": ..., "metadata": {"signature_def": {"signature_def": {...}}}}``."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_map)
    document = {"model_spec": _to_json_dict(response.model_spec),
                "metadata": {SIGNATURE_DEF_FIELD: _to_json_dict(signature_map)}}
    return json.dumps(document, indent=1).encode()
