"""The gRPC front end: ``PredictionService`` and ``ModelService`` with the stubs from
``tensorflow-serving-api``, plus ``grpc.health.v1`` and server reflection.

It only translates protos to service calls and errors to status codes (messages over 1024
characters are cut and end with ``...TRUNCATED``, as ``model_servers/grpc_status_util.cc`` does).
The health service reports SERVING, for the server and for both services (by full and by short
name), only while the engine is ready (:mod:`serving.engine.health`). Who may reload the
config, and how many reloads run at once: :mod:`serving.engine.reloads`. A client that cancels
its call, or closes its channel, cancels the handler: work still queued for it is dropped.

Before a request's tensors are decoded, what they declare is checked against what they carry
(:func:`serving.codec.declared_nbytes`) and reserved from the request memory budget
(:mod:`serving.engine.request_memory`; RESOURCE_EXHAUSTED past it).
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import TYPE_CHECKING

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tensorflow_serving.apis import (
    model_management_pb2,
    model_service_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2,
    prediction_service_pb2_grpc,
)

from tf_serving_platform.serving import codec, logger
from tf_serving_platform.serving.engine import request_context, responses
from tf_serving_platform.serving.engine.calls import ModelSpec, PredictCall
from tf_serving_platform.serving.engine.request_context import REQUEST_ID_KEY
from tf_serving_platform.serving.engine.request_memory import RequestMemory
from tf_serving_platform.serving.engine.tracing import OFF, Tracing
from tf_serving_platform.serving.errors import ServingError, invalid_argument

if TYPE_CHECKING:  # a front-end process serves without them (serving/engine/remote.py)
    from tf_serving_platform.serving.engine.health import Health
    from tf_serving_platform.serving.engine.reloads import ReloadGate
    from tf_serving_platform.serving.engine.service import PredictionService

log = logger(__name__)
MAX_MESSAGE_BYTES = 2**31 - 1
MAX_ERROR_CHARS = 1024
SERVICE_NAMES = ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")
# tensorflow_model_server marks its services SERVING by these short names (server.cc).
SHORT_SERVICE_NAMES = ("PredictionService", "ModelService")
NOT_A_LIST = ("ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
              "ModelConfigList is currently supported")


def _metadata_value(metadata, key: str) -> str | None:
    for item_key, value in metadata:
        if item_key == key:
            return value
    return None


def _request_model(request) -> str:
    """The model a request names (MultiInference: its first task's; the Open Inference
    Protocol's ``model_name`` or ``name``), for logs and spans."""
    if hasattr(request, "model_spec"):
        return request.model_spec.name
    tasks = getattr(request, "tasks", None)
    if tasks:
        return tasks[0].model_spec.name
    return getattr(request, "model_name", "") or getattr(request, "name", "")


def _abort_on_error(method):
    """Map ServingError (and bugs, as INTERNAL) onto the gRPC status of the call. The call runs
    in its span (continuing the caller's ``traceparent`` metadata); its request id
    (``x-request-id`` metadata, or a new one) is current while it runs and comes back in the
    trailing metadata, on success and error alike."""
    @functools.wraps(method)
    async def wrapper(self, request, context):
        tracing: Tracing = self.tracing
        model = _request_model(request)
        metadata = context.invocation_metadata() or ()
        with tracing.server_span(f"gRPC {method.__name__} {model}".rstrip(), metadata,
                                 {"model": model, "api": method.__name__,
                                  "entrypoint": "GRPC"}) as span:
            current = request_context.begin(_metadata_value(metadata, REQUEST_ID_KEY), model,
                                            tracing.traceparent(span))
            tracing.annotate(span, {"request_id": current.request_id})
            context.set_trailing_metadata(((REQUEST_ID_KEY, current.request_id),))
            try:
                response = await method(self, request, context)
                served = getattr(response, "model_spec", None)
                if served is not None:
                    tracing.annotate(span, {"version": served.version.value,
                                            "signature": served.signature_name})
                return response
            except ServingError as e:
                tracing.annotate(span, error=e.code.name)
                message = e.message if len(e.message) <= MAX_ERROR_CHARS else \
                    e.message[:MAX_ERROR_CHARS] + "...TRUNCATED"
                await _abort(context, e.code, message)
            except Exception:  # noqa: BLE001 - never let a bug kill the call without a status
                log.exception("internal error in %s", method.__name__)
                tracing.annotate(span, error=grpc.StatusCode.INTERNAL.name)
                await _abort(context, grpc.StatusCode.INTERNAL, "Internal error")
    return wrapper


def _child(tracing: Tracing, name: str):
    """A span of the current call's work (nothing when tracing is off)."""
    context = request_context.current.get()
    return tracing.child(name, context.traceparent if context else None)


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str):
    """End the call with ``code``. A call that ended already (its deadline passed on both
    sides at once, its client left) takes no status: gRPC's failure to send one is the
    caller's departure, treated as a cancellation rather than logged as a server error."""
    try:
        await context.abort(code, message)
    except grpc.aio.AbortError:
        raise
    except Exception:  # noqa: BLE001 - ExecuteBatchError: the call is gone
        raise asyncio.CancelledError from None


class _Undecodable:
    """Stands in for a request that does not parse, so that its call can answer for it."""

    def __init__(self, reason: str):
        self.reason = reason


def _parse_or_mark(deserializer):
    def parse(data: bytes):
        try:
            return deserializer(data)
        except DecodeError as e:
            return _Undecodable(str(e))
    return parse


class UndecodableRequests(grpc.aio.ServerInterceptor):
    """Answer a unary request that does not parse as its proto (corrupt wire format, a string
    field that is not UTF-8) with INVALID_ARGUMENT ``Could not parse the request: ...``: gRPC
    itself would answer UNKNOWN ``Unexpected <class '...DecodeError'>: ...`` and log a
    traceback (TensorFlow Serving's C++ gRPC answers INTERNAL). A user's mistake is never a
    server error."""

    def __init__(self):
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
            return handler  # (every unary method of this server is a coroutine)
        cached = self._wrapped.get(handler_call_details.method)
        if cached is None or cached[0] is not handler:
            cached = handler, self._wrap(handler)
            self._wrapped[handler_call_details.method] = cached
        return cached[1]

    @staticmethod
    def _wrap(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        behavior = handler.unary_unary

        async def unary_unary(request, context):
            if isinstance(request, _Undecodable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"Could not parse the request: {request.reason}")
            return await behavior(request, context)
        return grpc.unary_unary_rpc_method_handler(
            unary_unary, _parse_or_mark(handler.request_deserializer),
            handler.response_serializer)


def _counted(api: str):
    """Record ``request_count`` and ``request_latency`` (entrypoint GRPC) for one method."""
    def decorate(method):
        @functools.wraps(method)
        async def wrapper(self, request, context):
            async with self._service.metrics.request(request.model_spec.name, api,
                                                     "GRPC") as record:
                response = await method(self, request, context)
                record.update(version=response.model_spec.version.value,
                              signature=response.model_spec.signature_name)
                return response
        return wrapper
    return decorate


def model_spec(request, check_name: bool = True) -> ModelSpec:
    """The request's ``model_spec`` with TensorFlow Serving's checks."""
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
    spec = request.model_spec
    if check_name and not spec.name:
        raise invalid_argument("ModelSpec has no name specified.")
    choice = spec.WhichOneof("version_choice")
    return ModelSpec(spec.name, spec.version.value if choice == "version" else None,
                     spec.version_label if choice == "version_label" else None,
                     spec.signature_name)


def _deadline(context) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _declared_nbytes(inputs) -> int:
    """What a request's tensors will take decoded; TensorFlow Serving's parsing error, with
    the reason, for one that declares far more than it carries."""
    total = 0
    for alias, proto in inputs.items():
        try:
            total += codec.declared_nbytes(proto)
        except ServingError as e:
            raise invalid_argument(f"tensor parsing error: {alias}: {e.message}") from None
    return total


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, service: PredictionService, memory: RequestMemory, tracing: Tracing = OFF):
        self._service, self._memory = service, memory
        self.tracing = tracing

    @_abort_on_error
    @_counted("Predict")
    async def Predict(self, request, context):  # noqa: N802 - gRPC method names
        spec = model_spec(request)  # before the tensors, as predict_impl.cc checks it first
        with self._memory.reserve(_declared_nbytes(request.inputs)):
            inputs = {}
            with _child(self.tracing, "decode"):
                for alias, proto in request.inputs.items():
                    try:
                        inputs[alias] = codec.tensor_proto_to_ndarray(proto)
                    except ServingError:
                        raise invalid_argument(f"tensor parsing error: {alias}") from None
            call = PredictCall(spec, inputs, tuple(request.output_filter),
                               deadline=_deadline(context))
            result = await self._service.predict(call)
            with _child(self.tracing, "encode"):
                return responses.predict_response(result)

    @_abort_on_error
    @_counted("Classify")
    async def Classify(self, request, context):  # noqa: N802
        with self._memory.reserve(request.ByteSize()):
            return responses.classify_response(await self._service.classify(
                model_spec(request), request.input, _deadline(context)))

    @_abort_on_error
    @_counted("Regress")
    async def Regress(self, request, context):  # noqa: N802
        with self._memory.reserve(request.ByteSize()):
            return responses.regress_response(await self._service.regress(
                model_spec(request), request.input, _deadline(context)))

    @_abort_on_error
    async def MultiInference(self, request, context):  # noqa: N802
        if not request.tasks or not request.tasks[0].model_spec.name:
            # TF first looks up the servable of tasks[0] (the default ModelSpec when there is
            # none): multi_inference_helper.cc, GetModelSpecFromRequest.
            raise invalid_argument("ModelSpec has no name specified.")
        tasks = [(model_spec(task, check_name=False), task.method_name) for task in request.tasks]
        with self._memory.reserve(request.ByteSize()):
            results = await self._service.multi_inference(tasks, request.input,
                                                          _deadline(context))
            return responses.multi_inference_response(results)

    @_abort_on_error
    async def GetModelMetadata(self, request, context):  # noqa: N802
        model_spec(request, check_name=False)  # the fields are validated before the name
        if not request.metadata_field:
            raise invalid_argument("GetModelMetadataRequest must specify at least one "
                                   "metadata_field")
        for field in request.metadata_field:
            if field != responses.SIGNATURE_DEF_FIELD:
                raise invalid_argument(f"Metadata field {field} is not supported")
        return responses.metadata_response(*await self._service.metadata(model_spec(request)))


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, service: PredictionService, reloads: ReloadGate, tracing: Tracing = OFF):
        self._service, self._reloads = service, reloads
        self.tracing = tracing

    @_abort_on_error
    async def GetModelStatus(self, request, context):  # noqa: N802
        spec = model_spec(request, check_name=False)
        return responses.status_response(await self._service.status(spec.name, spec.version))

    @_abort_on_error
    async def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        response = model_management_pb2.ReloadConfigResponse()
        response.status.SetInParent()  # TF always sets it; OK is error_code 0
        try:
            # plain pairs: gRPC's own metadatum type does not pickle (to a model process)
            await self._reloads.authorize(tuple((key, value) for key, value in
                                                context.invocation_metadata() or ()))
            if request.config.WhichOneof("config") != "model_config_list":
                raise invalid_argument(NOT_A_LIST)  # model_service_impl.cc's default case
            await self._reloads.reload(request.config, context.time_remaining())
        except ServingError as e:
            response.status.error_code = e.code.value[0]
            response.status.error_message = e.message
            raise  # _abort_on_error aborts (once; aborting here too logged an internal error)
        return response


class HealthReporter:
    """Keeps ``grpc.health.v1`` in step with readiness."""

    def __init__(self, engine_health: Health):
        self.servicer = health.aio.HealthServicer()
        self._health = engine_health
        self._serving: bool | None = None

    async def update(self) -> None:
        serving = self._health.not_ready() is None
        if serving != self._serving:
            status = health_pb2.HealthCheckResponse.SERVING if serving else \
                health_pb2.HealthCheckResponse.NOT_SERVING
            for name in ("", *SERVICE_NAMES, *SHORT_SERVICE_NAMES):
                await self.servicer.set(name, status)
            self._serving = serving


def channel_arguments(text: str) -> list[tuple[str, str | int]]:
    """``--grpc_channel_arguments``: ``k=v,k=v``; values that parse as int are ints."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        pairs.append((key, int(value) if value.lstrip("-").isdigit() else value))
    return pairs


def build_server(service: PredictionService, reloads: ReloadGate, health_reporter: HealthReporter,
                 memory: RequestMemory, channel_args: str = "", tracing: Tracing = OFF,
                 v2_health: Health | None = None) -> grpc.aio.Server:
    """A gRPC server with every service registered; ports are added by the caller.
    ``v2_health``: also the Open Inference Protocol's service (:mod:`grpc_v2`), answering
    liveness and readiness from it."""
    # --grpc_channel_arguments override the defaults, as in TensorFlow Serving (gRPC itself
    # would keep the first of two values for one key).
    options = {"grpc.max_send_message_length": MAX_MESSAGE_BYTES,
               "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
               **dict(channel_arguments(channel_args))}
    server = grpc.aio.server(options=list(options.items()),
                             interceptors=[UndecodableRequests()])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(service, memory, tracing), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelServicer(service, reloads, tracing), server)
    health_pb2_grpc.add_HealthServicer_to_server(health_reporter.servicer, server)
    names = (prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"].full_name,
             model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name,
             health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME)
    if v2_health is not None:
        from tf_serving_platform.serving.engine import grpc_v2

        grpc_v2.add_to_server(server, service, v2_health, memory, tracing)
        names += (grpc_v2.SERVICE_NAME,)
    reflection.enable_server_reflection(names, server)
    return server
