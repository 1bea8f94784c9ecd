"""The REST front end: TensorFlow Serving's HTTP API on ``--rest_api_port``.

It only translates: URL grammar (``model_servers/http_rest_api_util.cc``) and JSON in, one call
to the service, JSON out, errors as ``{"error": message}`` with the HTTP status of
:mod:`serving.errors`. Paths outside ``/v1/`` other than health and metrics get a plain 404, as
TensorFlow Serving's libevent server answers.

Health (not in TensorFlow Serving, whose status endpoint answers 200 even with nothing loaded):
``GET /healthz`` is liveness (200 while the engine makes progress, 503 with the reason once the
watchdog finds it stalled), ``GET /readyz`` is readiness (200 only when alive and every
configured model has an AVAILABLE version, 503 with the reason otherwise and while shutting
down); see :mod:`serving.engine.health`.

A client that closes its connection cancels its request (aiohttp's ``handler_cancellation``): a
request still queued for a batch or the model executor is dropped, not computed.

Memory: a body is refused 413 when it is larger than ``--rest_api_max_body_bytes`` or than the
request memory budget could ever parse (:mod:`serving.engine.request_memory`), at once when its
``Content-Length`` says so; it reserves its share of the budget before it is parsed (429 when the
budget cannot hold it now). A large gzip body is inflated on a thread (zlib lets the GIL go), a
large JSON one parsed in a child process (:mod:`serving.engine.body_decoders`), so that the
event loop keeps serving other clients meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import unquote

import grpc
import orjson
from aiohttp import http_exceptions, web

from tf_serving_platform.serving import codec, logger
from tf_serving_platform.serving.codec import examples as codec_examples
from tf_serving_platform.serving.engine import body_decoders, request_context, responses, rest_v2
from tf_serving_platform.serving.engine.body_decoders import BodyDecoders
from tf_serving_platform.serving.engine.calls import ModelSpec, PredictCall, Served
from tf_serving_platform.serving.engine.connections import BoundedSite, ConnectionLimits
from tf_serving_platform.serving.engine.request_context import REQUEST_ID_KEY
from tf_serving_platform.serving.engine.request_memory import JSON_PARSE_FACTOR, RequestMemory
from tf_serving_platform.serving.engine.tracing import OFF, Tracing
from tf_serving_platform.serving.errors import ServingError, invalid_argument

if TYPE_CHECKING:  # a front-end process serves without them (serving/engine/remote.py)
    from tf_serving_platform.serving.engine.health import Health
    from tf_serving_platform.serving.engine.service import PredictionService

log = logger(__name__)

POST_PATH = re.compile(r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                       r":(classify|regress|predict)", re.IGNORECASE)
GET_PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                      r"(?:/(metadata))?", re.IGNORECASE)
JSON_HEADERS = {"Content-Type": "application/json"}
CORS_HEADERS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST, GET",
                "Access-Control-Allow-Headers": "Content-Type"}
INT64_MAX = 2**63 - 1
LIVENESS_PATH, READINESS_PATH = "/healthz", "/readyz"
V1_PREFIX = re.compile(r"/v1/", re.IGNORECASE)
V2_PREFIX = re.compile(r"/v2(/|$)")


def _not_found() -> web.Response:
    """libevent's plain 404, as TensorFlow Serving answers paths outside /v1/."""
    return web.Response(status=404, text="404 Not Found", content_type="text/html")
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    if int(text) > INT64_MAX:
        raise invalid_argument(f"Failed to convert version: {text} to numeric.")
    return int(text)


def _metric_labels(request: web.Request) -> tuple[str, str]:
    """``model_name`` and ``API`` labels: the URL's model and verb as typed ("" for GET)."""
    path = request.raw_path.split("?", 1)[0]
    match = POST_PATH.fullmatch(path) if request.method == "POST" else GET_PATH.fullmatch(path)
    if match is None:
        return "", ""
    return unquote(match.group(1) or ""), match.group(4) if request.method == "POST" else ""


def _error(error: ServingError, headers: dict) -> web.Response:
    return web.Response(body=orjson.dumps({"error": error.message}),
                        status=error.http_status, headers=headers)


def _malformed(request: web.Request) -> ServingError:
    return invalid_argument(f"Malformed request: {request.method} {request.raw_path}")


def _gunzip(body: bytes, limit: int) -> bytes:
    """``body`` gunzipped (every member, as :func:`gzip.decompress`), inflating at most
    ``limit`` bytes (0: no limit), so that a small gzip bomb cannot take the memory; 413 past
    it. A body that does not gunzip reads as empty, as in TensorFlow Serving
    (``evhttp_request.cc``), so the JSON parser reports it."""
    out = bytearray()
    while body:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing only
        try:
            out += inflater.decompress(body, limit + 1 - len(out) if limit else 0)
        except zlib.error:
            return b""
        if limit and len(out) > limit:
            raise web.HTTPRequestEntityTooLarge(limit, len(out))
        if not inflater.eof:
            return b""  # truncated
        body = inflater.unused_data
    return bytes(out)


class RestApi:
    """aiohttp handlers over one :class:`PredictionService`."""

    def __init__(self, service: PredictionService, health: Health, memory: RequestMemory,
                 decoders: BodyDecoders, timeout_ms: int, idle_timeout_s: float,
                 cors: bool = False, metrics_path: str | None = None,
                 tracing: Tracing = OFF, v2: bool = False):
        """``v2``: also the Open Inference Protocol's /v2 routes (:mod:`rest_v2`)."""
        self._service, self._health = service, health
        self._tracing = tracing
        self._v2 = rest_v2.V2Rest(service, health) if v2 else None
        self._idle_timeout_s = idle_timeout_s
        self._memory, self._decoders = memory, decoders
        self._metrics_path = metrics_path
        self._timeout_s = timeout_ms / 1000 if timeout_ms > 0 else None
        self._headers = {**JSON_HEADERS, **(CORS_HEADERS if cors else {})}
        self._max_body_bytes = 0  # set by app(); 0 is no limit, as for aiohttp

    def app(self, max_body_bytes: int, with_admin: bool = True) -> web.Application:
        """The REST API; health and metrics too unless they live on an admin address."""
        async def route(request: web.Request) -> web.Response:
            if V1_PREFIX.match(request.path):
                return await self._v1(request)
            if self._v2 is not None and V2_PREFIX.match(request.path):
                return await self._v2_request(request)
            return (with_admin and await self._admin(request)) or _not_found()
        if self._memory.budget:
            parsable = self._memory.budget // JSON_PARSE_FACTOR
            max_body_bytes = min(max_body_bytes, parsable) if max_body_bytes else parsable
        self._max_body_bytes = max_body_bytes
        app = web.Application(client_max_size=max_body_bytes)
        app.router.add_route("*", "/{tail:.*}", route)
        return app

    def admin_app(self) -> web.Application:
        """Health and metrics only, for ``--admin_address``."""
        async def route(request: web.Request) -> web.Response:
            return await self._admin(request) or _not_found()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", route)
        return app

    async def _admin(self, request: web.Request) -> web.Response | None:
        if request.path == LIVENESS_PATH:
            stalled = self._health.not_alive()
            if stalled:
                return web.json_response({"status": "stalled", "reason": stalled}, status=503)
            return web.json_response({"status": "alive"})
        if request.path == READINESS_PATH:
            not_ready = self._health.not_ready()
            if not_ready:
                return web.json_response({"status": "not ready", "reason": not_ready},
                                         status=503)
            return web.json_response({"status": "ready"})
        if request.path == self._metrics_path:  # any method, as TensorFlow Serving
            return web.Response(body=await self._service.metrics_page(),
                                headers={"Content-Type": METRICS_CONTENT_TYPE})
        return None

    async def _v1(self, request: web.Request) -> web.Response:
        model, api = _metric_labels(request)
        return await self._serve(request, model, api, self._dispatch)

    async def _v2_request(self, request: web.Request) -> web.Response:
        model, api = rest_v2.labels(request.method, request.raw_path.split("?", 1)[0])
        return await self._serve(request, model, api, self._dispatch_v2)

    async def _dispatch_v2(self, request: web.Request) -> tuple:
        body = await self._body(request) if request.method == "POST" else b""
        factor = 2 if rest_v2.HEADER_LENGTH in request.headers else JSON_PARSE_FACTOR
        with self._memory.reserve(len(body) * factor):
            return await self._v2.dispatch(request.method, request.raw_path.split("?", 1)[0],
                                           request.headers, body, self._deadline())

    async def _serve(self, request: web.Request, model: str, api: str, dispatch
                     ) -> web.Response:
        """One API request, in its span (continuing the caller's ``traceparent``); its
        request id (``x-request-id``, or a new one) is current while it runs and comes back
        as a header, on success and error alike."""
        tracing = self._tracing
        with tracing.server_span(f"REST {api or request.method} {model}".rstrip(),
                                 request.headers, {"model": model, "api": api or "status",
                                                   "entrypoint": "REST"}) as span:
            current = request_context.begin(request.headers.get(REQUEST_ID_KEY), model,
                                            tracing.traceparent(span))
            tracing.annotate(span, {"request_id": current.request_id})
            response = await self._answer(request, model, api, span, {
                **self._headers, REQUEST_ID_KEY: current.request_id}, dispatch)
            if response.status >= 400:
                tracing.annotate(span, {"http.status_code": response.status},
                                 error=f"HTTP {response.status}")
            return response

    async def _answer(self, request: web.Request, model: str, api: str, span,
                      headers: dict, dispatch) -> web.Response:
        """``dispatch``'s answer: ``(body, served)``, or ``(body, served, extra headers,
        status)``."""
        try:
            async with self._service.metrics.request(model, api, "REST") as record:
                body, served, *more = await dispatch(request)
                if served is not None:
                    record.update(version=served.version, signature=served.signature_name)
                    self._tracing.annotate(span, {"version": served.version,
                                                  "signature": served.signature_name})
            extra, status = more or (None, 200)
            return web.Response(body=body, status=status,
                                headers={**headers, **extra} if extra else headers)
        except ServingError as e:
            return _error(e, headers)
        except (web.HTTPRequestEntityTooLarge, web.HTTPRequestTimeout) as e:
            return web.Response(body=orjson.dumps({"error": e.text}), status=e.status,
                                headers=headers)
        except Exception:  # noqa: BLE001 - a bug must still answer JSON, and be logged
            log.exception("internal error on %s %s", request.method, request.raw_path)
            return _error(ServingError(grpc.StatusCode.INTERNAL, "Internal error"), headers)

    async def _dispatch(self, request: web.Request) -> tuple[bytes, Served | None]:
        path = request.raw_path.split("?", 1)[0]
        if request.method == "POST":
            match = POST_PATH.fullmatch(path)
            if match is None or match.group(4) not in ("predict", "classify", "regress"):
                raise _malformed(request)
            name, version, label, verb = match.groups()
            spec_args = (unquote(name), _version(version), label and unquote(label))
            handler: Callable[..., Awaitable[tuple]] = getattr(self, f"_{verb}")
            body = await self._body(request)
            with self._memory.reserve(len(body) * JSON_PARSE_FACTOR):
                return await handler(spec_args, body)
        if request.method == "GET":
            match = GET_PATH.fullmatch(path)
            if match is None:
                raise _malformed(request)
            name, version, label, metadata = match.groups()
            if not name:
                if version or label or metadata:
                    raise invalid_argument("Missing model name in request.")
                return responses.models_json(await self._service.models()), None
            spec = ModelSpec(unquote(name), _version(version), label and unquote(label))
            return await (self._metadata(spec) if metadata else self._status(spec)), None
        raise _malformed(request)

    async def _body(self, request: web.Request) -> bytes:
        """The body, gunzipped when ``Content-Encoding`` contains ``gzip`` (aiohttp's own
        decompression is off, see :func:`start`; see :func:`_gunzip`). A body over the limit
        is refused with 413: at once when its ``Content-Length`` says so (nothing is read),
        else as soon as the bytes read or inflated pass the limit."""
        limit = self._max_body_bytes
        if limit and (request.content_length or 0) > limit:
            raise web.HTTPRequestEntityTooLarge(limit, request.content_length)
        try:
            body = await self._read(request, limit)
        except ConnectionResetError:  # the client left mid-body: not a server error
            raise ServingError(grpc.StatusCode.CANCELLED, "The client closed the connection "
                               "before sending the whole request body") from None
        if "gzip" in request.headers.get("Content-Encoding", ""):
            body = await asyncio.to_thread(_gunzip, body, limit) if len(
                body) > body_decoders.OFF_LOOP_BYTES else _gunzip(body, limit)
        return body

    async def _read(self, request: web.Request, limit: int) -> bytes:
        """The body as sent; 408 when the client pauses longer than the idle timeout."""
        chunks, size = [], 0
        while True:
            try:
                async with asyncio.timeout(self._idle_timeout_s):
                    chunk = await request.content.readany()
            except TimeoutError:
                raise web.HTTPRequestTimeout(text=(
                    f"The client sent nothing of the request body for {self._idle_timeout_s:g} s"
                    " (--rest_api_idle_timeout_seconds)")) from None
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if limit and size > limit:
                raise web.HTTPRequestEntityTooLarge(limit, size)
            chunks.append(chunk)

    def _deadline(self) -> float | None:
        return None if self._timeout_s is None else time.monotonic() + self._timeout_s

    def _child(self, name: str):
        """A span of this request's work (nothing when tracing is off)."""
        context = request_context.current.get()
        return self._tracing.child(name, context.traceparent if context else None)

    async def _predict(self, spec_args: tuple, body: bytes) -> tuple[bytes, Served]:
        with self._child("decode"):
            signature_name, request = await self._decoders.decode(
                body_decoders.decode_predict, body, body_decoders.decode_dense_predict)
        spec = ModelSpec(*spec_args, signature_name=signature_name)
        if isinstance(request, ServingError):
            # TensorFlow Serving looks the model and signature up before reading the tensors:
            # their errors come first (predict checks them too, on the version it pins).
            await self._service.check_rest_signature(spec)
            raise request
        call = PredictCall(spec, request.inputs, json_row_format=request.row_format,
                           deadline=self._deadline())
        result = await self._service.predict(call)
        with self._child("encode"):
            return codec.encode_predict_json(result.outputs, request.row_format), result.served

    async def _on_examples(self, method: Callable, spec_args: tuple, body: bytes):
        """Decode a classify/regress body and call the service ``method`` with it."""
        with self._child("decode"):
            signature_name, model_input = await self._decoders.decode(
                codec_examples.decode_examples_json, body)
        return await method(ModelSpec(*spec_args, signature_name or ""), model_input,
                            self._deadline())

    async def _classify(self, spec_args: tuple, body: bytes) -> tuple[bytes, Served]:
        result = await self._on_examples(self._service.classify, spec_args, body)
        if result.num_examples == 0:
            raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
        return codec_examples.encode_classify_json(result.classes, result.scores), result.served

    async def _regress(self, spec_args: tuple, body: bytes) -> tuple[bytes, Served]:
        result = await self._on_examples(self._service.regress, spec_args, body)
        return codec_examples.encode_regress_json(result.values), result.served

    async def _metadata(self, spec: ModelSpec) -> bytes:
        served, signature_defs = await self._service.metadata(spec)
        return responses.metadata_json(responses.metadata_response(served, signature_defs))

    async def _status(self, spec: ModelSpec) -> bytes:
        # TensorFlow Serving ignores the label segment of a status request.
        statuses = await self._service.status(spec.name, spec.version)
        return responses.status_json(responses.status_response(statuses))


class MalformedRequestLog(logging.Filter):
    """One warning line, not an error with a traceback, for a request aiohttp's parser refuses.

    aiohttp answers such a request 400 itself and logs it as if the server had failed; it is
    the client's error, and tracebacks in the log must mean a bug here.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, http_exceptions.HttpProcessingError):
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg = "refused a malformed HTTP request from %s: %s"
            record.args = (peer, " ".join(str(error.message).split())[:200])
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _quiet_malformed_requests() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestLog) for f in server_log.filters):
        server_log.addFilter(MalformedRequestLog())


async def start(app: web.Application, host: str, port: int, grace_s: float,
                limits: ConnectionLimits, ssl_context: ssl.SSLContext | None = None
                ) -> web.AppRunner:
    """Serve ``app`` on ``host:port`` (TLS with ``ssl_context``); returns the runner."""
    _quiet_malformed_requests()
    # auto_decompress=False: RestApi._body gunzips as TensorFlow Serving does (gzip only).
    # handler_cancellation: a client that hangs up cancels its handler (see the module doc).
    # keepalive_timeout: the idle and header timeout (serving/engine/connections.py).
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=grace_s, auto_decompress=False,
                           handler_cancellation=True, keepalive_timeout=limits.idle_timeout_s)
    await runner.setup()
    await BoundedSite(runner, host, port, max_connections=limits.max_connections,
                      handshake_timeout_s=limits.idle_timeout_s, on_refused=limits.on_refused,
                      shutdown_timeout=grace_s, ssl_context=ssl_context).start()
    return runner


async def stop(runner: web.AppRunner) -> None:
    """Stop accepting, let requests in flight finish (within the grace period), close."""
    await runner.cleanup()
