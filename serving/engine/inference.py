"""Classify, Regress and MultiInference over serialized ``tf.Example`` inputs, and warmup replay.

As TensorFlow Serving runs them (``servables/tensorflow/classifier.cc``, ``regressor.cc``,
``multi_inference.cc``): a signature is checked once (``PreProcess*``), which names one input
tensor and the output tensors to fetch; the serialized examples are fed to that tensor and the
outputs are checked and read by tensor name (``PostProcess*``). MultiInference feeds the same
examples to each task's own input tensor in one run and fetches the union of their outputs, so
TF2 SavedModels (one input tensor per signature) work as well as TF1 graphs (one shared input).
Method names are checked only with ``--enable_signature_method_name_check``, as in TF Serving.
"""

from __future__ import annotations

import grpc
import numpy as np
from google.protobuf import text_format
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import prediction_log_pb2

from tf_serving_platform.serving import codec
from tf_serving_platform.serving.engine.calls import ModelSpec
from tf_serving_platform.serving.engine.examples import serialized_examples
from tf_serving_platform.serving.engine.servable import Servable
from tf_serving_platform.serving.engine.signature import DEFAULT_SIGNATURE
from tf_serving_platform.serving.errors import ServingError, invalid_argument

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
EXAMPLES_INPUT = "inputs"
Outputs = dict[str, np.ndarray]
"""Fetched tensors by tensor name."""


def _debug_string(signature: meta_graph_pb2.SignatureDef) -> str:
    """``SignatureDef::DebugString()``, which TensorFlow Serving quotes in these errors."""
    return text_format.MessageToString(signature)


def _shape(value: np.ndarray) -> str:
    """``TensorShape::DebugString()``."""
    return "[" + ",".join(str(d) for d in value.shape) + "]"


def _dtype_name(value: np.ndarray) -> str:
    return "DT_" + codec.dtype_of_array(value).name.upper()


class _ExamplesJob:
    """A classify or regress signature of one servable: the checks every ``PreProcess*`` starts
    with, then one run feeding the examples to the signature's ``inputs`` tensor."""

    KIND = METHOD = ""
    input_tensor: str
    output_tensors: list[str]

    def __init__(self, servable: Servable, signature_name: str, check_method: bool):
        self.servable = servable
        self.key = signature_name or DEFAULT_SIGNATURE
        if self.key not in servable.signatures:
            raise invalid_argument(f"No signature was found with the name: {self.key}")
        self.signature_def = sig = servable.signature_defs[self.key]
        if check_method and sig.method_name != self.METHOD:
            raise invalid_argument(f"Expected {self.KIND} signature method_name to be "
                                   f"{self.METHOD}. Was: {sig.method_name}")
        if len(sig.inputs) != 1:
            raise invalid_argument("Expected one input Tensor.")

    def _set_input(self) -> None:
        if EXAMPLES_INPUT not in self.signature_def.inputs:
            raise invalid_argument(f"No {self.KIND} inputs found in SignatureDef: "
                                   f"{_debug_string(self.signature_def)}")
        self.input_tensor = self.signature_def.inputs[EXAMPLES_INPUT].name

    def result(self, examples: int, outputs: Outputs):
        raise NotImplementedError

    def run(self, examples: np.ndarray):
        values = self.servable.run_tensors({self.input_tensor: examples}, self.output_tensors)
        return self.result(len(examples), dict(zip(self.output_tensors, values, strict=True)))


class ClassifyJob(_ExamplesJob):
    """A classification signature, checked as ``PreProcessClassification`` checks it."""

    KIND, METHOD = "classification", CLASSIFY_METHOD

    def __init__(self, servable: Servable, signature_name: str, check_method: bool = False):
        super().__init__(servable, signature_name, check_method)
        sig = self.signature_def
        if len(sig.outputs) not in (1, 2):
            raise invalid_argument(f"Expected one or two output Tensors, found "
                                   f"{len(sig.outputs)}")
        self._set_input()
        self._classes = sig.outputs["classes"].name if "classes" in sig.outputs else None
        self._scores = sig.outputs["scores"].name if "scores" in sig.outputs else None
        if self._classes is None and self._scores is None:
            raise invalid_argument('Expected classification signature outputs to contain at '
                                   'least one of "classes" or "scores". Signature was: '
                                   f"{_debug_string(sig)}")
        self.output_tensors = [t for t in (self._classes, self._scores) if t is not None]

    def result(self, examples: int, outputs: Outputs
               ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(classes, scores)``, checked as ``PostProcessClassificationResult`` checks them."""
        classes = outputs[self._classes] if self._classes else None
        scores = outputs[self._scores] if self._scores else None
        for name, value, dtype in (("classes", classes, "DT_STRING"),
                                   ("scores", scores, "DT_FLOAT")):
            if value is None:
                continue
            if value.ndim != 2:
                raise invalid_argument("Expected Tensor shape: [batch_size num_classes] but got "
                                       f"{_shape(value)}")
            if _dtype_name(value) != dtype:
                raise invalid_argument(f"Expected {name} Tensor of {dtype}. Got: "
                                       f"{_dtype_name(value)}")
            if len(value) != examples:
                raise invalid_argument(f"Expected {name} output batch size of {examples}. Got: "
                                       f"{len(value)}")
        if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
            raise invalid_argument("Tensors class and score should match in dim_size(1). Got "
                                   f"{classes.shape[1]} vs. {scores.shape[1]}")
        return classes, scores


class RegressJob(_ExamplesJob):
    """A regression signature, checked as ``PreProcessRegression`` checks it."""

    KIND, METHOD = "regression", REGRESS_METHOD

    def __init__(self, servable: Servable, signature_name: str, check_method: bool = False):
        super().__init__(servable, signature_name, check_method)
        sig = self.signature_def
        if len(sig.outputs) != 1:
            raise invalid_argument("Expected one output Tensor.")
        self._set_input()
        if "outputs" not in sig.outputs:
            raise invalid_argument("No regression outputs found in SignatureDef: "
                                   f"{_debug_string(sig)}")
        self.output_tensors = [sig.outputs["outputs"].name]

    def result(self, examples: int, outputs: Outputs) -> np.ndarray:
        """One value per example, checked as ``PostProcessRegressionResult`` checks them."""
        values = outputs[self.output_tensors[0]]
        if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
            raise invalid_argument("Expected output Tensor shape to be either [batch_size] or "
                                   f"[batch_size, 1] but got {_shape(values)}")
        if len(values) != examples:
            raise invalid_argument("Input batch size did not match output batch size: "
                                   f"{examples} vs. {len(values)}")
        if _dtype_name(values) != "DT_FLOAT":
            raise invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: "
                                   f"{_dtype_name(values)}")
        return values.reshape(-1)


Job = ClassifyJob | RegressJob


def job_for_method(servable: Servable, signature_name: str, method: str,
                   check_method: bool = False) -> Job:
    if method == CLASSIFY_METHOD:
        return ClassifyJob(servable, signature_name, check_method)
    if method == REGRESS_METHOD:
        return RegressJob(servable, signature_name, check_method)
    raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                       f"Unsupported signature method_name: {method}")


class MultiInferenceJob:
    """The tasks of one MultiInferenceRequest, checked task by task as ``multi_inference.cc``
    does, run as one computation."""

    def __init__(self, servable: Servable, specs: list[tuple[ModelSpec, str]],
                 check_method: bool = False):
        self.servable = servable
        self.jobs: list[Job] = []
        model, seen = "", set()
        for spec, method in specs:
            if not spec.name:
                raise invalid_argument("Found ModelSpec with an empty model name.")
            if model and spec.name != model:
                raise invalid_argument("All ModelSpecs in a MultiInferenceRequest must access "
                                       "the same model name.")
            model = spec.name
            key = spec.signature_name or DEFAULT_SIGNATURE
            if key in seen:
                raise invalid_argument(f"Duplicate evaluation of signature: {key}")
            seen.add(key)
            if key not in servable.signatures:
                raise invalid_argument(f"Requested signature not found in model graph: {key}")
            self.jobs.append(job_for_method(servable, key, method, check_method))
        self._inputs = sorted({job.input_tensor for job in self.jobs})
        self._outputs = sorted({t for job in self.jobs for t in job.output_tensors})

    def run(self, examples: np.ndarray) -> list:
        """Each task's result, in task order."""
        values = self.servable.run_tensors({name: examples for name in self._inputs},
                                           self._outputs)
        outputs = dict(zip(self._outputs, values, strict=True))
        return [job.result(len(examples), outputs) for job in self.jobs]


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
        MultiInferenceJob(servable, specs).run(serialized_examples(request.input))
        return
    request = getattr(record, kind).request
    job = (ClassifyJob if kind == "classify_log" else RegressJob)(
        servable, request.model_spec.signature_name)
    job.run(serialized_examples(request.input))
