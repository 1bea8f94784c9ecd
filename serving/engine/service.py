"""The prediction service: what both front ends call (TensorFlow Serving's "predictor").

It asks the manager for a pinned servable, resolves and validates the signature, runs the model
on the model executor (never on the event loop) and returns typed results. Messages and codes are
TensorFlow Serving's (``servables/tensorflow/predict_util.cc``, ``classifier.cc``,
``regressor.cc``, ``model_servers/get_model_status_impl.cc``).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future

import grpc
import numpy as np
from tensorflow_serving.apis import input_pb2
from tensorflow_serving.apis.prediction_log_pb2 import PredictionLog

from tf_serving_platform.serving import codec
from tf_serving_platform.serving.engine import inference, prediction_logs, request_context
from tf_serving_platform.serving.engine.batcher import BatchScheduler
from tf_serving_platform.serving.engine.calls import (
    ClassifyResult,
    ModelListing,
    ModelSpec,
    PredictCall,
    PredictResult,
    RegressResult,
    Served,
    VersionStatus,
)
from tf_serving_platform.serving.engine.examples import serialized_examples
from tf_serving_platform.serving.engine.manager import Manager
from tf_serving_platform.serving.engine.metrics import Metrics
from tf_serving_platform.serving.engine.request_log import RequestLogs
from tf_serving_platform.serving.engine.servable import Servable
from tf_serving_platform.serving.engine.signature import (
    DEFAULT_SIGNATURE,
    PREDICT_METHOD,
    SignatureInfo,
)
from tf_serving_platform.serving.engine.tracing import OFF, Tracing
from tf_serving_platform.serving.engine.watchdog import ModelRuns
from tf_serving_platform.serving.errors import ServingError, invalid_argument

Inputs = dict[str, np.ndarray]
PREDICT_METHODS = (PREDICT_METHOD, inference.CLASSIFY_METHOD, inference.REGRESS_METHOD)


def _signature(servable: Servable, name: str, rest: bool) -> SignatureInfo:
    key = name or DEFAULT_SIGNATURE
    if key in servable.signatures:
        return servable.signatures[key]
    if rest:
        raise invalid_argument(f'Serving signature name: "{key}" not found in signature def')
    raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                       f'Serving signature key "{key}" not found.')


def _rest_signature(servable: Servable, name: str) -> SignatureInfo:
    """The signature of a REST predict, with a non-empty input map (``GetInfoMap``)."""
    signature = _signature(servable, name, rest=True)
    if not signature.inputs:
        raise invalid_argument(f"Failed to get input map for signature: {name or 'DEFAULT'}")
    return signature


def _braces(names) -> str:
    return "{" + ",".join(sorted(names)) + "}"


def _grpc_inputs(servable: Servable, signature: SignatureInfo, inputs: Inputs) -> Inputs:
    """The inputs to feed for a gRPC request, checked as ``predict_util.cc`` checks them:
    input count, then each alias (a missing one takes the signature's default, as
    ``saved_model::GetInputValues`` does), then dtypes in TensorFlow's words."""
    defaults = servable.signature_defs[signature.key].defaults
    sent, expected = set(inputs), set(signature.inputs)
    if len(sent) > len(expected) or (len(sent) < len(expected) and not defaults):
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({_braces(sent)}) != len({_braces(expected)}). Sent extra: "
            f"{_braces(sent - expected)}. Missing but required: {_braces(expected - sent)}.")
    feeds = dict(inputs)
    for alias in sorted(expected - sent):
        if alias not in defaults:
            raise invalid_argument(
                f"Signature input alias: {alias}(feed name: {signature.inputs[alias].name}) not "
                f"found in request and no default value provided. Inputs expected to be in the "
                f"request {_braces(sent)}, or default input alias set: "
                f"{_braces(defaults)[1:-1]}")
        feeds[alias] = codec.tensor_proto_to_ndarray(defaults[alias])
    for index, (alias, info) in enumerate(sorted(signature.inputs.items())):
        got = codec.dtype_of_array(feeds[alias])
        if got.enum != info.dtype.enum:
            raise invalid_argument(f"Expects arg[{index}] to be {info.dtype.name} but "
                                   f"{got.name} is provided")
    return {alias: feeds[alias] for alias in expected}


def _output_names(signature: SignatureInfo, output_filter: tuple[str, ...]) -> list[str]:
    if not output_filter:
        return sorted(signature.outputs)
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid_argument(f"output tensor alias not found in signature: {alias} "
                                   f"Outputs expected to be in the set "
                                   f"{_braces(signature.outputs)}.")
        if alias in seen:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return list(output_filter)


class PredictionService:
    """Predict, Classify, Regress, MultiInference, metadata and status over the manager."""

    def __init__(self, manager: Manager, executor: Executor, runs: ModelRuns,
                 configured_models: Callable[[], list[str]], metrics: Metrics,
                 batcher: BatchScheduler | None = None, check_method_names: bool = False,
                 request_logs: RequestLogs | None = None, tags: frozenset[str] = frozenset(),
                 tracing: Tracing = OFF):
        """``request_logs``: where sampled calls are logged (``logging_config``); ``tags``:
        the SavedModel tags served, written in each record's metadata; ``tracing``: where a
        model run's span goes (a batched one's: :mod:`serving.engine.batcher`)."""
        self._manager, self._runs = manager, runs
        self._tracing = tracing
        self._request_logs, self._tags = request_logs, tags
        self._check_methods = check_method_names
        """``--enable_signature_method_name_check``."""
        self._executor = executor
        self._configured_models = configured_models
        self.metrics = metrics
        self._batcher = batcher
        self.starting = True
        """True until the initial config has loaded; the server clears it."""

    def _refuse_while_starting(self) -> None:
        """Until the initial load is done every model name is UNAVAILABLE (retry):
        ``tensorflow_model_server`` opens no port until then, so none of its clients can meet
        NOT_FOUND, or a model still loading, before the server is ready."""
        if self.starting:
            raise ServingError(grpc.StatusCode.UNAVAILABLE,
                               "The server is starting: the initial model load is not done")

    def _handle(self, spec: ModelSpec):
        """The manager's pinned handle."""
        self._refuse_while_starting()
        return self._manager.handle(spec.name, spec.version, spec.label)

    async def _await(self, future: Future, deadline: float | None):
        """Await a model run; DEADLINE_EXCEEDED once ``deadline`` passes.

        When the caller goes away (its task is cancelled: a cancelled RPC, a closed connection)
        or its deadline passes, the run is cancelled: dropped if it has not started, its answer
        discarded if it has; either way counted in ``:platform:requests_abandoned``.
        """
        waiter = asyncio.wrap_future(future)
        try:
            if deadline is None:
                return await waiter
            return await asyncio.wait_for(waiter, max(deadline - time.monotonic(), 0))
        except TimeoutError:
            self._abandon(future, "deadline")
            raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        except asyncio.CancelledError:
            self._abandon(future, "cancelled")
            raise

    def _log(self, model: str, build: Callable[..., PredictionLog], *args) -> None:
        """Hand a served call to the request log when it is sampled; ``build`` makes its
        record on the logger's thread, later."""
        if self._request_logs is None:
            return
        request_log = self._request_logs.sample(model)
        if request_log is not None:
            context = request_context.current.get()
            request_log.submit(functools.partial(build, *args, self._tags,
                                                 context.request_id if context else ""))

    def _abandon(self, future: Future, reason: str) -> None:
        stage = "queued" if future.cancel() else "running"
        self.metrics.abandoned.labels(reason, stage).inc()

    async def _run(self, servable: Servable, api: str, fn: Callable, *args,
                   deadline: float | None = None):
        """Run ``fn`` on the model executor (never on the event loop), timed, watched and
        (tracing on) in a ``model_run`` span under the request's."""
        future = self._executor.submit(self._runs.call, servable, api, self._traced(fn), *args)
        return await self._await(future, deadline)

    def _traced(self, fn: Callable) -> Callable:
        context = request_context.current.get()
        if not self._tracing.enabled or context is None or context.traceparent is None:
            return fn
        tracing, parent = self._tracing, context.traceparent

        def run(*args):
            with tracing.child("model_run", parent):
                return fn(*args)
        return run

    async def _predict_outputs(self, servable: Servable, signature: SignatureInfo,
                               inputs: Inputs, outputs: list[str], deadline: float | None):
        if self._batcher is None:
            return await self._run(servable, "Predict", servable.run, signature.key, inputs,
                                   outputs, deadline=deadline)
        future = self._batcher.submit(servable, signature.key, inputs, tuple(outputs), deadline)
        return await self._await(future, deadline)

    async def predict(self, call: PredictCall) -> PredictResult:
        spec = call.spec
        with self._handle(spec) as servable:
            if call.json_row_format is not None:
                signature = _rest_signature(servable, spec.signature_name)
                inputs = codec.bind_inputs(call.inputs, signature.input_dtypes(),
                                           call.json_row_format)
            else:
                signature = _signature(servable, spec.signature_name, rest=False)
                inputs = _grpc_inputs(servable, signature, call.inputs)
            if self._check_methods and signature.method_name not in PREDICT_METHODS:
                raise ServingError(grpc.StatusCode.INTERNAL, (
                    "Expected prediction signature method_name to be one of {"
                    f"{', '.join(PREDICT_METHODS)}}}. Was: {signature.method_name}"))
            names = _output_names(signature, call.output_filter)
            outputs = await self._predict_outputs(servable, signature, inputs, names,
                                                  call.deadline)
            result = PredictResult(Served(spec.name, servable.version, signature.key), outputs)
            self._log(spec.name, prediction_logs.predict_log, spec, inputs, call.output_filter,
                      result)
            return result

    async def check_rest_signature(self, spec: ModelSpec) -> None:
        """Raise what a REST predict gets for an unknown model, version, label or signature.

        TensorFlow Serving resolves these before it reads ``instances`` / ``inputs``
        (``FillPredictRequestFromJson``), so the REST front end calls this when the body's
        tensors did not decode; :meth:`predict` checks them first on the version it pins.
        """
        with self._handle(spec) as servable:
            _rest_signature(servable, spec.signature_name)

    async def classify(self, spec: ModelSpec, model_input: input_pb2.Input,
                       deadline: float | None = None) -> ClassifyResult:
        """Classify; the model and signature are resolved before the examples are read."""
        with self._handle(spec) as servable:
            job = inference.ClassifyJob(servable, spec.signature_name, self._check_methods)
            classes, scores = await self._run(servable, "Classify", job.run,
                                              serialized_examples(model_input),
                                              deadline=deadline)
            result = ClassifyResult(Served(spec.name, servable.version, job.key), classes,
                                    scores)
            self._log(spec.name, prediction_logs.classify_log, spec, model_input, result)
            return result

    async def regress(self, spec: ModelSpec, model_input: input_pb2.Input,
                      deadline: float | None = None) -> RegressResult:
        """Regress; the model and signature are resolved before the examples are read."""
        with self._handle(spec) as servable:
            job = inference.RegressJob(servable, spec.signature_name, self._check_methods)
            values = await self._run(servable, "Regress", job.run,
                                     serialized_examples(model_input), deadline=deadline)
            result = RegressResult(Served(spec.name, servable.version, job.key), values)
            self._log(spec.name, prediction_logs.regress_log, spec, model_input, result)
            return result

    async def multi_inference(self, specs: list[tuple[ModelSpec, str]],
                              model_input: input_pb2.Input, deadline: float | None = None
                              ) -> list[ClassifyResult | RegressResult]:
        """Several classify/regress signatures of one model on the same examples, in order;
        the servable is the first task's, as in ``multi_inference_helper.cc``."""
        first = specs[0][0]
        with self._handle(first) as servable:
            job = inference.MultiInferenceJob(servable, specs, self._check_methods)
            answers = await self._run(servable, "MultiInference", job.run,
                                      serialized_examples(model_input), deadline=deadline)
        served = [Served(first.name, servable.version, j.key) for j in job.jobs]
        results = [ClassifyResult(s, *a) if isinstance(j, inference.ClassifyJob)
                   else RegressResult(s, a)
                   for s, j, a in zip(served, job.jobs, answers, strict=True)]
        self._log(first.name, prediction_logs.multi_inference_log, specs, model_input, results)
        return results

    async def metadata(self, spec: ModelSpec) -> tuple[Served, dict]:
        """The served version and its SignatureDefs (GetModelMetadata's ``signature_def``)."""
        with self._handle(spec) as servable:
            return Served(spec.name, servable.version, ""), servable.signature_defs

    async def status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """Every tracked version of ``name``, highest first (labels are ignored, as in TF)."""
        self._refuse_while_starting()
        return self._version_status(name, version)

    def _version_status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        return [VersionStatus(r.version, r.state.name,
                              r.error.code.name if r.error else "OK",
                              r.error.message if r.error else "")
                for r in self._manager.version_status(name, version)]

    async def models(self) -> list[ModelListing]:
        """Every configured model, in config order, with its versions and labels (beyond
        TensorFlow Serving, which has no list: its issue #795). A model whose versions the
        source has not found yet lists none."""
        self._refuse_while_starting()
        labels = self._manager.snapshot().labels
        listings = []
        for name in self._configured_models():
            try:
                versions = self._version_status(name)
            except ServingError:  # NOT_FOUND: no version of it is tracked yet
                versions = []
            listings.append(ModelListing(name, versions, dict(labels.get(name, {}))))
        return listings

    async def metrics_page(self) -> bytes:
        """The Prometheus page (served on the REST port or the admin address)."""
        for gather in self.metrics.gatherers:
            await gather()
        return self.metrics.render()

    def ready(self) -> bool:
        """True once the initial load is done (until then requests are refused, see
        :meth:`_refuse_while_starting`), when a model is configured and every one has an
        AVAILABLE version (a reload that unloaded everything leaves nothing to serve)."""
        if self.starting:
            return False
        models, configured = self._manager.snapshot().models, self._configured_models()
        return bool(configured) and all(models.get(m) for m in configured)
