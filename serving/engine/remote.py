"""What a front-end process calls instead of the engine: the model process, over its socket.

:class:`RemoteService`, :class:`RemoteHealth`, :class:`RemoteReloads` and :class:`RemoteMetrics`
answer the calls the front ends make (:mod:`serving.engine.rest`, :mod:`serving.engine.grpc_api`)
exactly as the local objects do; the model process (:mod:`serving.engine.model_host`) runs them
on the one service, so batches merge across every front end, each in its caller's request
context (:mod:`serving.engine.request_context`). A caller that goes away cancels
its call there too. When the model process is gone every call in flight fails UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import grpc
from prometheus_client.metrics import MetricWrapperBase

from tf_serving_platform.serving.engine import request_context
from tf_serving_platform.serving.engine.calls import ModelSpec, PredictCall
from tf_serving_platform.serving.engine.frames import FrameChannel
from tf_serving_platform.serving.engine.metrics import Metrics
from tf_serving_platform.serving.errors import ServingError

MODEL_PROCESS_GONE = "The model process of this server is gone; retry"


def error_from_wire(code_name: str, message: str) -> ServingError:
    return ServingError(grpc.StatusCode[code_name], message)


class ModelProcess:
    """The front end's connection to the model process: calls out, replies and health in."""

    def __init__(self):
        self.channel = FrameChannel(self._on_frame, self._on_lost)
        self.records = MetricRecords(self.channel)
        self.metrics = RemoteMetrics(self.records)
        self._calls: dict[int, asyncio.Future] = {}
        self._ids = itertools.count()
        self.health = RemoteHealth()
        self.lost = asyncio.Event()
        self.settings: Any = None
        self.front_end_count = 1
        self.got_settings = asyncio.Event()

    async def call(self, method: str, *args):
        """``method(*args)`` on the model process's service; its answer or its error."""
        if self.channel.closed:
            raise ServingError(grpc.StatusCode.UNAVAILABLE, MODEL_PROCESS_GONE)
        call_id = next(self._ids)
        reply = self._calls[call_id] = asyncio.get_running_loop().create_future()
        self.records.send()  # what the caller recorded (a request in flight) counts first
        self.channel.send(("call", call_id, method, args, request_context.current.get()))
        try:
            return await reply
        except asyncio.CancelledError:
            # The caller went away, and its task's cancel cancelled ``reply`` too (unless an
            # answer had come first): so does its work.
            if reply.cancelled():
                self.channel.send(("cancel", call_id))
            raise
        finally:
            self._calls.pop(call_id, None)

    def _on_frame(self, frame: tuple) -> None:
        kind = frame[0]
        if kind == "reply":
            _, call_id, ok, value = frame
            reply = self._calls.get(call_id)
            if reply is not None and not reply.done():
                if ok:
                    reply.set_result(value)
                else:
                    reply.set_exception(error_from_wire(*value))
        elif kind == "health":
            self.health.not_alive_reason, self.health.not_ready_reason = frame[1:]
        elif kind == "flush":  # a scrape: this process's records so far, then the answer
            self.records.send()
            self.channel.send(("flushed", frame[1]))
        elif kind == "settings":
            self.settings, self.front_end_count = frame[1:]
            self.got_settings.set()

    def _on_lost(self) -> None:
        for reply in self._calls.values():
            if not reply.done():
                reply.set_exception(ServingError(grpc.StatusCode.UNAVAILABLE, MODEL_PROCESS_GONE))
        self.health.not_alive_reason = self.health.not_ready_reason = MODEL_PROCESS_GONE
        self.lost.set()


class RemoteService:
    """The prediction service's calls, run by the model process."""

    def __init__(self, model_process: ModelProcess):
        self._call = model_process.call
        self.metrics = model_process.metrics

    async def predict(self, call: PredictCall):
        return await self._call("predict", call)

    async def check_rest_signature(self, spec: ModelSpec) -> None:
        return await self._call("check_rest_signature", spec)

    async def classify(self, spec: ModelSpec, model_input, deadline: float | None = None):
        return await self._call("classify", spec, model_input, deadline)

    async def regress(self, spec: ModelSpec, model_input, deadline: float | None = None):
        return await self._call("regress", spec, model_input, deadline)

    async def multi_inference(self, specs, model_input, deadline: float | None = None):
        return await self._call("multi_inference", specs, model_input, deadline)

    async def metadata(self, spec: ModelSpec):
        return await self._call("metadata", spec)

    async def status(self, name: str, version: int | None = None):
        return await self._call("status", name, version)

    async def models(self):
        return await self._call("models")

    async def metrics_page(self) -> bytes:
        return await self._call("metrics_page")


class RemoteReloads:
    """``HandleReloadConfigRequest``'s gate, in the model process."""

    def __init__(self, model_process: ModelProcess):
        self._call = model_process.call

    async def authorize(self, metadata) -> None:
        await self._call("authorize", metadata)

    async def reload(self, config, timeout: float | None) -> None:
        await self._call("reload", config, timeout)


class RemoteHealth:
    """The model process's health as it last reported it (it reports every change)."""

    def __init__(self):
        self.not_alive_reason: str | None = None
        self.not_ready_reason: str | None = "the model process has not reported yet"
        self.shutting_down = False

    def not_alive(self) -> str | None:
        return self.not_alive_reason

    def not_ready(self) -> str | None:
        return "shutting down" if self.shutting_down else self.not_ready_reason


class _Recorder:
    """One metric (or one labelled child) of :class:`RemoteMetrics`: each update is a record
    sent to the model process with the next frames."""

    __slots__ = ("_name", "_labels", "_out")

    def __init__(self, name: str, out: MetricRecords, labels: tuple = ()):
        self._name, self._out, self._labels = name, out, labels

    def labels(self, *values: str) -> _Recorder:
        return _Recorder(self._name, self._out, values)

    def inc(self, amount: float = 1) -> None:
        self._out.add((self._name, self._labels, "inc", amount))

    def dec(self, amount: float = 1) -> None:
        self._out.add((self._name, self._labels, "dec", amount))

    def observe(self, value: float) -> None:
        self._out.add((self._name, self._labels, "observe", value))



class MetricRecords:
    """Metric records of one turn of the loop, sent as one frame: at the end of the turn, or
    before a call, so that the model process applies them first (a request is in flight
    before it runs, as in one process)."""

    def __init__(self, channel: FrameChannel):
        self._channel = channel
        self._records: list[tuple] = []

    def add(self, record: tuple) -> None:
        if not self._records:
            asyncio.get_running_loop().call_soon(self.send)
        self._records.append(record)

    def send(self) -> None:
        if self._records:
            records, self._records = self._records, []
            self._channel.send(("metrics", records))


class RemoteMetrics(Metrics):
    """The engine's metrics, recorded in the model process: the same attributes and helpers
    as :class:`Metrics` (so the front ends do not know where they run), each metric a
    :class:`_Recorder`. The model process maps model names it does not know, sums each front
    end's gauges and forgets those of a front end that is gone."""

    def __init__(self, out: MetricRecords):  # noqa: D107 - no Metrics.__init__: no registry
        for name, value in vars(Metrics()).items():
            if isinstance(value, MetricWrapperBase):
                setattr(self, name, _Recorder(name, out))
        self.is_known_model = lambda name: True
        self.refreshers = []

    def render(self) -> bytes:
        raise NotImplementedError("a front end's metrics are on the model process's page")
