"""What the request log writes: a served call as TensorFlow Serving's ``PredictionLog``.

Built on the request logger's thread (:mod:`serving.engine.request_log`), never on the request
path: the service hands over the call's own objects (typed inputs, the results), which nothing
changes once the answer is out. The request is the one the model ran, in gRPC's terms whichever
wire it came on (a REST body's JSON is logged as the tensors it bound to), so that a log replays
over either wire and as warmup. ``log_metadata.model_spec`` names the version that answered;
``request_origin`` carries the request id (TensorFlow Serving's open-source build sets none).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    input_pb2,
    model_pb2,
    prediction_log_pb2,
    regression_pb2,
)

from tf_serving_platform.serving import codec
from tf_serving_platform.serving.engine import responses
from tf_serving_platform.serving.engine.calls import ModelSpec, PredictResult, Served


def _spec(spec: ModelSpec) -> model_pb2.ModelSpec:
    """The spec as the caller sent it (a version, a label, or neither)."""
    out = model_pb2.ModelSpec(name=spec.name, signature_name=spec.signature_name)
    if spec.version is not None:
        out.version.value = spec.version
    elif spec.label is not None:
        out.version_label = spec.label
    return out


def _log(served: Served, tags: Iterable[str], request_id: str
         ) -> prediction_log_pb2.PredictionLog:
    log = prediction_log_pb2.PredictionLog()
    meta = log.log_metadata
    meta.model_spec.CopyFrom(responses.model_spec(served))
    meta.saved_model_tags.extend(sorted(tags))
    meta.request_origin = request_id
    return log


def predict_log(spec: ModelSpec, inputs: dict[str, np.ndarray], output_filter: tuple[str, ...],
                result: PredictResult, tags: Iterable[str], request_id: str
                ) -> prediction_log_pb2.PredictionLog:
    log = _log(result.served, tags, request_id)
    request = log.predict_log.request
    request.model_spec.CopyFrom(_spec(spec))
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(codec.ndarray_to_tensor_proto(value))
    request.output_filter.extend(output_filter)
    log.predict_log.response.CopyFrom(responses.predict_response(result))
    return log


def _examples_log(kind: str, request_type, respond, spec: ModelSpec,
                  model_input: input_pb2.Input, result, tags: Iterable[str], request_id: str
                  ) -> prediction_log_pb2.PredictionLog:
    """A Classify or Regress call: ``kind`` is the ``PredictionLog`` field."""
    log = _log(result.served, tags, request_id)
    logged = getattr(log, kind)
    logged.request.CopyFrom(request_type(model_spec=_spec(spec), input=model_input))
    logged.response.CopyFrom(respond(result))
    return log


classify_log = functools.partial(_examples_log, "classify_log",
                                 classification_pb2.ClassificationRequest,
                                 responses.classify_response)
regress_log = functools.partial(_examples_log, "regress_log", regression_pb2.RegressionRequest,
                                responses.regress_response)


def multi_inference_log(specs: list[tuple[ModelSpec, str]], model_input: input_pb2.Input,
                        results: list, tags: Iterable[str], request_id: str
                        ) -> prediction_log_pb2.PredictionLog:
    log = _log(results[0].served, tags, request_id)
    request = log.multi_inference_log.request
    for spec, method in specs:
        request.tasks.add(model_spec=_spec(spec), method_name=method)
    request.input.CopyFrom(model_input)
    log.multi_inference_log.response.CopyFrom(responses.multi_inference_response(results))
    return log
