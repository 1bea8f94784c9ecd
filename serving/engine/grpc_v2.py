"""The Open Inference Protocol ("KServe V2") over gRPC: ``inference.GRPCInferenceService`` on the
gRPC port (``--enable_v2_protocol``), with the generated stubs ``tritonclient`` maintains.

ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata, ModelInfer (typed
``contents`` or ``raw_input_contents``; outputs answered in ``raw_output_contents``, as Triton
does) and RepositoryIndex. RepositoryModelLoad and RepositoryModelUnload answer UNIMPLEMENTED:
what serves is the model config and its version policy, changed with ModelService's
HandleReloadConfigRequest; the protocol's other calls (statistics, shared memory, trace and log
settings) answer UNIMPLEMENTED as the generated servicer does. Errors map as for the TensorFlow
Serving API (:func:`serving.engine.grpc_api._abort_on_error`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tf_serving_platform.serving.codec import v2 as codec_v2
from tf_serving_platform.serving.engine import v2
from tf_serving_platform.serving.engine.grpc_api import _abort_on_error, _deadline
from tf_serving_platform.serving.engine.request_memory import RequestMemory
from tf_serving_platform.serving.engine.tracing import OFF, Tracing
from tf_serving_platform.serving.errors import ServingError, invalid_argument

if TYPE_CHECKING:
    from tf_serving_platform.serving.engine.health import Health

SERVICE_NAME = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
NO_REPOSITORY_CONTROL = ("models load from their base paths as the model config and its "
                         "version policy say; change them with ModelService/"
                         "HandleReloadConfigRequest")


def _string_parameters(parameters) -> dict[str, str]:
    return {key: value.string_param for key, value in parameters.items()
            if value.WhichOneof("parameter_choice") == "string_param"}


def _inputs(request: service_pb2.ModelInferRequest) -> dict:
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise invalid_argument(f"raw_input_contents holds {len(raw)} tensors for "
                               f"{len(request.inputs)} inputs")
    inputs = {}
    for index, tensor in enumerate(request.inputs):
        if tensor.name in inputs:
            raise invalid_argument(f"input '{tensor.name}' is given twice")
        shape = list(tensor.shape)
        inputs[tensor.name] = (
            codec_v2.from_raw(tensor.name, tensor.datatype, shape, raw[index]) if raw
            else codec_v2.from_contents(tensor.name, tensor.datatype, shape, tensor.contents))
    return inputs


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, service, health: Health, memory: RequestMemory,
                 tracing: Tracing = OFF):
        self._service, self._health, self._memory = service, health, memory
        self.tracing = tracing

    @_abort_on_error
    async def ServerLive(self, request, context):  # noqa: N802 - gRPC method names
        return service_pb2.ServerLiveResponse(live=self._health.not_alive() is None)

    @_abort_on_error
    async def ServerReady(self, request, context):  # noqa: N802
        return service_pb2.ServerReadyResponse(ready=self._health.not_ready() is None)

    @_abort_on_error
    async def ModelReady(self, request, context):  # noqa: N802
        ready = await v2.model_ready(self._service, request.name, request.version)
        return service_pb2.ModelReadyResponse(ready=ready)

    @_abort_on_error
    async def ServerMetadata(self, request, context):  # noqa: N802
        return service_pb2.ServerMetadataResponse(name=v2.SERVER_NAME,
                                                  version=v2.server_version(),
                                                  extensions=list(v2.EXTENSIONS))

    @_abort_on_error
    async def ModelMetadata(self, request, context):  # noqa: N802
        document = await v2.model_metadata(self._service, request.name, request.version)
        tensor = service_pb2.ModelMetadataResponse.TensorMetadata
        return service_pb2.ModelMetadataResponse(
            name=document["name"], versions=document["versions"],
            platform=document["platform"],
            inputs=[tensor(**t) for t in document["inputs"]],
            outputs=[tensor(**t) for t in document["outputs"]])

    @_abort_on_error
    async def ModelInfer(self, request, context):  # noqa: N802
        async with self._service.metrics.request(request.model_name, v2.API, "GRPC") as record:
            with self._memory.reserve(request.ByteSize()):
                call = v2.infer_call(request.model_name, request.model_version,
                                     _inputs(request), tuple(o.name for o in request.outputs),
                                     _string_parameters(request.parameters),
                                     _deadline(context))
                result = await self._service.predict(call)
            record.update(version=result.served.version,
                          signature=result.served.signature_name)
            response = service_pb2.ModelInferResponse(
                model_name=request.model_name, model_version=str(result.served.version),
                id=request.id)
            for name, datatype, shape, array in v2.outputs_of(result):
                response.outputs.add(name=name, datatype=datatype, shape=shape)
                response.raw_output_contents.append(codec_v2.to_raw(array))
            return response

    @_abort_on_error
    async def RepositoryIndex(self, request, context):  # noqa: N802
        response = service_pb2.RepositoryIndexResponse()
        for listing in await self._service.models():
            for status in listing.versions:
                available = status.state == "AVAILABLE"
                if request.ready and not available:
                    continue
                response.models.add(name=listing.name, version=str(status.version),
                                    state="READY" if available else status.state,
                                    reason=status.error_message)
        return response

    @_abort_on_error
    async def RepositoryModelLoad(self, request, context):  # noqa: N802
        raise ServingError(grpc.StatusCode.UNIMPLEMENTED, NO_REPOSITORY_CONTROL)

    @_abort_on_error
    async def RepositoryModelUnload(self, request, context):  # noqa: N802
        raise ServingError(grpc.StatusCode.UNIMPLEMENTED, NO_REPOSITORY_CONTROL)


def add_to_server(server: grpc.aio.Server, service, health: Health, memory: RequestMemory,
                  tracing: Tracing = OFF) -> None:
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(service, health, memory, tracing), server)
