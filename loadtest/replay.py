"""Replaying a request log (``logging_config``'s ``PredictionLog`` records) as load.

Each logged Predict, Classify, Regress or MultiInference request becomes a pre-encoded gRPC body
and, where TensorFlow Serving's REST API has the call (all but MultiInference), a REST body: the
tensors as the columnar ``{"inputs": ...}`` document, the examples as ``{"examples": [...]}``.
Users take them in logged order from one sequence per process, so the mix of calls, signatures
and batch sizes is the logged one. The model (and version or label) can be re-aimed, to replay
one engine's traffic against another.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import orjson

from tf_serving_platform.serving.client import ModelRef
from tf_serving_platform.serving.errors import ServingError
from tf_serving_platform.serving.tensorflow_protos import protos_only

SERVICE = "/tensorflow.serving.PredictionService/"
KINDS = {"predict_log": "Predict", "classify_log": "Classify", "regress_log": "Regress",
         "multi_inference_log": "MultiInference"}


class ReplayError(Exception):
    """The log cannot be replayed (one-line message)."""


@dataclass(frozen=True)
class ReplayRequest:
    """One logged call, ready to send; ``rest_path`` is None when REST has no such call."""

    api: str
    model: str
    grpc_method: str
    grpc_body: bytes
    rest_path: str | None
    rest_body: bytes | None


def _feature_json(feature):
    kind = feature.WhichOneof("kind")
    if kind is None:
        return []
    values = list(getattr(feature, kind).value)
    if kind == "bytes_list":
        values = [_text(v) for v in values]
    return values


def _text(value: bytes):
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(value).decode()}


def _example_json(example) -> dict:
    return {name: _feature_json(f) for name, f in sorted(example.features.feature.items())}


def examples_body(model_input, signature: str) -> bytes:
    """The REST ``:classify`` / ``:regress`` body of a logged ``Input``."""
    kind = model_input.WhichOneof("kind")
    doc: dict = {"signature_name": signature}
    if kind == "example_list_with_context":
        listed = model_input.example_list_with_context
        doc["context"] = _example_json(listed.context)
        doc["examples"] = [_example_json(e) for e in listed.examples]
    else:
        doc["examples"] = [_example_json(e) for e in model_input.example_list.examples]
    return orjson.dumps(doc)


def _aim(spec, model: str | None, version: int | None, label: str | None) -> ModelRef:
    """The logged spec, re-aimed at ``model`` / ``version`` / ``label`` where given; a logged
    version or label is kept only when the model is not re-aimed."""
    from tf_serving_platform.serving.client.grpc_calls import model_spec

    name = model or spec.name
    if model or version is not None or label:
        target = ModelRef(name, version, label or None, spec.signature_name or "serving_default")
    else:
        choice = spec.WhichOneof("version_choice")
        target = ModelRef(name, spec.version.value if choice == "version" else None,
                          spec.version_label if choice == "version_label" else None,
                          spec.signature_name or "serving_default")
    spec.CopyFrom(model_spec(target))
    return target


def _request(record, model: str | None, version: int | None, label: str | None
             ) -> ReplayRequest | None:
    from tf_serving_platform.loadtest.payloads import rest_body
    from tf_serving_platform.serving import codec

    kind = record.WhichOneof("log_type")
    if kind not in KINDS:
        return None
    request = getattr(record, kind).request
    api = KINDS[kind]
    rest_path = rest = None
    if kind == "multi_inference_log":
        targets = [_aim(task.model_spec, model, version, label) for task in request.tasks]
        target = targets[0]
    else:
        target = _aim(request.model_spec, model, version, label)
        if kind == "predict_log":
            arrays = {alias: codec.tensor_proto_to_ndarray(proto)
                      for alias, proto in sorted(request.inputs.items())}
            rest_path, rest = target.rest_path(":predict"), rest_body(arrays, target)
        else:
            verb = ":classify" if kind == "classify_log" else ":regress"
            rest_path, rest = target.rest_path(verb), examples_body(request.input,
                                                                    target.signature_key)
    return ReplayRequest(api, target.model, SERVICE + api, request.SerializeToString(),
                         rest_path, rest)


def load(path: str | Path, model: str | None = None, version: int | None = None,
         label: str | None = None) -> list[ReplayRequest]:
    """The logged requests of ``path`` (a file, a folder or a ``filename_prefix``), in order.

    Raises:
        ReplayError: nothing to replay there, or a record that cannot be read.
    """
    protos_only()  # TensorFlow's protos without its runtime, before request_log imports them
    from tf_serving_platform.serving.engine.request_log import read_logs

    try:
        requests = [r for r in (_request(record, model, version, label)
                                for record in read_logs(path)) if r is not None]
    except (OSError, ValueError, ServingError) as e:
        raise ReplayError(f"cannot replay {path}: {e}") from None
    if not requests:
        raise ReplayError(f"{path}: no logged Predict, Classify, Regress or MultiInference "
                          "request to replay")
    return requests
