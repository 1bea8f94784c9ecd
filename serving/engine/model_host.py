"""The model process's side of the front-end sockets: the one service, for every front end.

Each front-end process (:mod:`serving.engine.frontend_process`) connects to a unix socket in a
private directory; its calls run on the engine's :class:`PredictionService` (so its requests
merge into the same batches as every other front end's), its metric records land on the
engine's one registry, and it hears of every change of health. A front end that goes away
cancels the calls it left (counted as abandoned, as a client that hangs up) and its gauges are
taken back.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict

import grpc
from prometheus_client import Gauge

from tf_serving_platform.serving import logger
from tf_serving_platform.serving.engine import request_context
from tf_serving_platform.serving.engine.frames import FrameChannel
from tf_serving_platform.serving.engine.front_ends import FrontEndSettings
from tf_serving_platform.serving.engine.health import Health
from tf_serving_platform.serving.engine.metrics import UNKNOWN_MODEL, Metrics
from tf_serving_platform.serving.engine.reloads import ReloadGate
from tf_serving_platform.serving.engine.request_context import RequestContext
from tf_serving_platform.serving.engine.service import PredictionService
from tf_serving_platform.serving.errors import ServingError

log = logger(__name__)
FLUSH_TIMEOUT_S = 1.0


class _FrontEnd:
    """One connected front-end process."""

    def __init__(self, host: ModelHost):
        self.channel = FrameChannel(lambda frame: host.on_frame(self, frame),
                                    lambda: host.on_lost(self))
        self.calls: dict[int, asyncio.Task] = {}
        self.gauges: dict[tuple, float] = defaultdict(float)
        """What this front end added to each (metric, labels) gauge, taken back when it goes."""
        self.health: tuple | None = None
        self.listening = False
        self.flushes: dict[int, asyncio.Future] = {}
        """Scrapes waiting for this front end's records."""


class ModelHost:
    """Serves front-end processes' calls on the engine's own objects."""

    def __init__(self, settings: FrontEndSettings, service: PredictionService, health: Health,
                 reloads: ReloadGate, metrics: Metrics, front_end_count: int):
        self._settings, self._front_end_count = settings, front_end_count
        self._health, self._metrics = health, metrics
        self._front_ends: set[_FrontEnd] = set()
        self._methods = {
            "predict": service.predict, "check_rest_signature": service.check_rest_signature,
            "classify": service.classify, "regress": service.regress,
            "multi_inference": service.multi_inference, "metadata": service.metadata,
            "status": service.status, "models": service.models,
            "metrics_page": service.metrics_page, "authorize": reloads.authorize,
            "reload": reloads.reload}
        metrics.gatherers.append(self._gather_metrics)
        self._flush_ids = itertools.count()
        self._server: asyncio.AbstractServer | None = None
        self._listening_changed = asyncio.Event()

    async def start(self, path: str) -> None:
        self._server = await asyncio.get_running_loop().create_unix_server(self._accept, path)

    def _accept(self) -> FrameChannel:
        front_end = _FrontEnd(self)
        self._front_ends.add(front_end)
        front_end.channel.send(("settings", self._settings, self._front_end_count))
        self._push_health(front_end)
        return front_end.channel

    def push_health(self) -> None:
        """Tell every front end the health now, where it changed."""
        for front_end in self._front_ends:
            self._push_health(front_end)

    def _push_health(self, front_end: _FrontEnd) -> None:
        health = (self._health.not_alive(), self._health.not_ready())
        if health != front_end.health:
            front_end.health = health
            front_end.channel.send(("health", *health))

    def on_frame(self, front_end: _FrontEnd, frame: tuple) -> None:
        kind = frame[0]
        if kind == "call":
            _, call_id, method, args, context = frame
            front_end.calls[call_id] = asyncio.create_task(
                self._serve(front_end, call_id, method, args, context))
        elif kind == "cancel":
            task = front_end.calls.get(frame[1])
            if task is not None:
                task.cancel()
        elif kind == "metrics":
            self._record(front_end, frame[1])
        elif kind == "flushed":
            flushed = front_end.flushes.pop(frame[1], None)
            if flushed is not None and not flushed.done():
                flushed.set_result(None)
        elif kind == "listening":
            front_end.listening = True
            self._listening_changed.set()

    async def _serve(self, front_end: _FrontEnd, call_id: int, method: str, args: tuple,
                     context: RequestContext | None):
        request_context.current.set(context)  # this task's own copy: the caller's request
        try:
            reply = ("reply", call_id, True, await self._methods[method](*args))
        except ServingError as e:
            reply = ("reply", call_id, False, (e.code.name, e.message))
        except asyncio.CancelledError:
            return  # the front end cancelled it: it waits for no answer
        except Exception:  # noqa: BLE001 - a bug must still answer, and be logged
            log.exception("internal error serving a front end's %s", method)
            reply = ("reply", call_id, False, (grpc.StatusCode.INTERNAL.name, "Internal error"))
        finally:
            front_end.calls.pop(call_id, None)
        if method == "reload":  # every front end hears what it changed before its caller does
            self.push_health()
        front_end.channel.send(reply)

    def _record(self, front_end: _FrontEnd, records: list[tuple]) -> None:
        metrics = self._metrics
        for name, labels, op, value in records:
            metric = getattr(metrics, name)
            if labels and metric._labelnames[0] == "model_name" and \
                    not metrics.is_known_model(labels[0]):
                labels = (UNKNOWN_MODEL, *labels[1:])
            if isinstance(metric, Gauge):
                front_end.gauges[(name, labels)] += value if op == "inc" else -value
            getattr(metric.labels(*labels) if labels else metric, op)(value)

    async def _gather_metrics(self) -> None:
        """Every front end's records up to now, before a page is rendered: a request a front
        end has answered is on the page, whichever front end the scrape came through. One that
        does not answer within a second (stuck, or going) is left out of this page."""
        loop, waiting = asyncio.get_running_loop(), []
        for front_end in self._front_ends:
            flush_id = next(self._flush_ids)
            front_end.flushes[flush_id] = flushed = loop.create_future()
            front_end.channel.send(("flush", flush_id))
            waiting.append(flushed)
        if waiting:
            await asyncio.wait(waiting, timeout=FLUSH_TIMEOUT_S)

    def on_lost(self, front_end: _FrontEnd) -> None:
        self._front_ends.discard(front_end)
        for task in list(front_end.calls.values()):
            task.cancel()
        for (name, labels), added in front_end.gauges.items():
            metric = getattr(self._metrics, name)
            (metric.labels(*labels) if labels else metric).dec(added)
        for flushed in front_end.flushes.values():  # a scrape waits for it no more
            if not flushed.done():
                flushed.set_result(None)

    async def wait_listening(self, count: int) -> None:
        """Until ``count`` connected front ends listen on their ports."""
        while sum(f.listening for f in self._front_ends) < count:
            self._listening_changed.clear()
            await self._listening_changed.wait()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for front_end in list(self._front_ends):
            front_end.channel.close()
