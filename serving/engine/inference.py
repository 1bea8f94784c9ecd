"""Classify, Regress and MultiInference over serialized ``tf.Example`` inputs, and warmup replay.

Signature rules and messages follow ``servables/tensorflow/classifier.cc``, ``regressor.cc`` and
``multi_inference.cc``: one DT_STRING input named ``inputs``; classify reads ``classes`` and/or
``scores``, regress reads ``outputs`` shaped ``[batch]`` or ``[batch, 1]``.
"""

from __future__ import annotations

import grpc
import numpy as np
from google.protobuf import text_format
from tensorflow_serving.apis import prediction_log_pb2

from serving import codec
from serving.engine.calls import ModelSpec
from serving.engine.examples import serialized_examples
from serving.engine.servable import Servable
from serving.engine.signature import DEFAULT_SIGNATURE, SignatureInfo
from serving.errors import ServingError, invalid_argument

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
EXAMPLES_INPUT = "inputs"


def _signature(servable: Servable, name: str) -> SignatureInfo:
    key = name or DEFAULT_SIGNATURE
    if key not in servable.signatures:
        raise invalid_argument(f"No signature was found with the name: {key}")
    signature = servable.signatures[key]
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    return signature


def _debug_string(servable: Servable, key: str) -> str:
    """``SignatureDef::DebugString()``, which TensorFlow Serving quotes in these errors."""
    return text_format.MessageToString(servable.signature_defs[key])


def _check_examples_input(servable: Servable, signature: SignatureInfo, kind: str) -> None:
    """The one input must be named ``inputs`` (``kClassifyInputs`` / ``kRegressInputs``)."""
    if EXAMPLES_INPUT not in signature.inputs:
        raise invalid_argument(f"No {kind} inputs found in SignatureDef: "
                               f"{_debug_string(servable, signature.key)}")


class ClassifyJob:
    """A classification signature of one servable, checked once, run on examples."""

    def __init__(self, servable: Servable, signature_name: str):
        self.servable = servable
        self.signature = _signature(servable, signature_name)
        if len(self.signature.outputs) not in (1, 2):
            raise invalid_argument("Expected one or two output Tensors, found "
                                   f"{len(self.signature.outputs)}")
        _check_examples_input(servable, self.signature, "classification")
        self.outputs = [o for o in ("classes", "scores") if o in self.signature.outputs]
        if not self.outputs:
            raise invalid_argument("Expected classification signature outputs to contain at "
                                   'least one of "classes" or "scores". Signature was: '
                                   f"{_debug_string(servable, self.signature.key)}")

    def run(self, examples: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        (alias,) = self.signature.inputs
        out = self.servable.run(self.signature.key, {alias: examples}, self.outputs)
        classes, scores = out.get("classes"), out.get("scores")
        for name, value in (("classes", classes), ("scores", scores)):
            if value is not None and (value.ndim != 2 or len(value) != len(examples)):
                raise invalid_argument(f"Expected Tensor shape: [{len(examples)},?] but got "
                                       f"{list(value.shape)} for output {name}")
        return classes, None if scores is None else scores.astype(np.float32)


class RegressJob:
    """A regression signature of one servable, checked once, run on examples."""

    def __init__(self, servable: Servable, signature_name: str):
        self.servable = servable
        self.signature = _signature(servable, signature_name)
        if len(self.signature.outputs) != 1:
            raise invalid_argument("Expected one output Tensor.")
        _check_examples_input(servable, self.signature, "regression")
        if "outputs" not in self.signature.outputs:
            raise invalid_argument("No regression outputs found in SignatureDef: "
                                   f"{_debug_string(servable, self.signature.key)}")

    def run(self, examples: np.ndarray) -> np.ndarray:
        (alias,) = self.signature.inputs
        values = self.servable.run(self.signature.key, {alias: examples}, ["outputs"])["outputs"]
        if values.shape not in ((len(examples),), (len(examples), 1)):
            raise invalid_argument("Expected output Tensor shape to be either [batch_size] or "
                                   f"[batch_size, 1] but got {list(values.shape)}")
        return values.reshape(-1).astype(np.float32)


def job_for_method(servable: Servable, signature_name: str,
                   method: str) -> ClassifyJob | RegressJob:
    if method == CLASSIFY_METHOD:
        return ClassifyJob(servable, signature_name)
    if method == REGRESS_METHOD:
        return RegressJob(servable, signature_name)
    raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                       f"Unsupported signature method_name: {method}")


def check_multi_inference(specs: list[tuple[ModelSpec, str]]) -> None:
    """The request-level checks of ``multi_inference.cc``."""
    if not specs:
        raise invalid_argument("MultiInferenceRequest must have at least one task.")
    names = {spec.name for spec, _ in specs}
    if "" in names:
        raise invalid_argument("Found ModelSpec with an empty model name.")
    if len(names) > 1:
        raise invalid_argument("All ModelSpecs in a MultiInferenceRequest must access the same "
                               "model name.")
    seen: set[str] = set()
    for spec, _ in specs:
        key = spec.signature_name or DEFAULT_SIGNATURE
        if key in seen:
            raise invalid_argument(f"Duplicate evaluation of signature: {key}")
        seen.add(key)


def multi_inference_jobs(servable: Servable, specs: list[tuple[ModelSpec, str]]
                         ) -> list[ClassifyJob | RegressJob]:
    """One job per task; all tasks must read the same input tensor (one Session run in TF)."""
    for spec, _ in specs:
        key = spec.signature_name or DEFAULT_SIGNATURE
        if key not in servable.signatures:
            raise invalid_argument(f"Requested signature not found in model graph: {key}")
    jobs = [job_for_method(servable, spec.signature_name, method) for spec, method in specs]
    tensors = {info.name for job in jobs for info in job.signature.inputs.values()}
    if len(tensors) > 1:
        raise invalid_argument("Input tensor must be the same for all Signatures.")
    return jobs


def replay_record(servable: Servable, record: prediction_log_pb2.PredictionLog) -> None:
    """Run one warmup record against a servable that is not serving yet."""
    kind = record.WhichOneof("log_type")
    if kind == "predict_log":
        request = record.predict_log.request
        signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
        inputs = {k: codec.tensor_proto_to_ndarray(v) for k, v in request.inputs.items()}
        outputs = list(request.output_filter) or sorted(servable.signatures[signature].outputs)
        servable.run(signature, inputs, outputs)
        return
    if kind == "multi_inference_log":
        request = record.multi_inference_log.request
        specs = [(ModelSpec(servable.name, signature_name=t.model_spec.signature_name),
                  t.method_name) for t in request.tasks]
        examples = serialized_examples(request.input)
        for job in multi_inference_jobs(servable, specs):
            job.run(examples)
        return
    request = getattr(record, kind).request
    job = (ClassifyJob if kind == "classify_log" else RegressJob)(
        servable, request.model_spec.signature_name)
    job.run(serialized_examples(request.input))
