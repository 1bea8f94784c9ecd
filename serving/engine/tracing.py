"""OpenTelemetry distributed tracing (W3C ``traceparent``), exported over OTLP/gRPC.

A caller's ``traceparent`` (an HTTP header or gRPC metadata) is continued, so the engine's spans
join the caller's trace. Spans leave the process in a background thread (a
``BatchSpanProcessor``): the request path only appends to a bounded queue, and a collector that
is down or slow costs dropped spans, never latency.

* Off unless an endpoint is given (``--tracing_otlp_endpoint``, or the standard
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``). Off is free: no SDK
  object exists and every method returns None after one attribute test, so the engine calls
  them unconditionally.
* A context crosses a process boundary (front end to model host) as the plain ``traceparent``
  string: :meth:`Tracing.traceparent` on one side, :meth:`Tracing.context_from_traceparent` on
  the other. ``tracestate`` does not cross: it is the caller's, and its spans keep it.
* Work whose times are only known afterwards (a task's wait in the batch queue, measured from
  enqueue to dequeue; one batch run shared by many requests) is recorded with explicit times
  by :meth:`Tracing.record`, the batch once, with a link to every request it carried. OTel
  times are wall-clock epoch nanoseconds: :func:`wall_ns` turns a ``time.monotonic()`` reading
  (what the batcher keeps) into one.

Each :class:`Tracing` has its own ``TracerProvider``, never the global one, so an engine and
its tests can run several side by side and shut each down alone.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, Status
from opentelemetry.trace import StatusCode as SpanStatus
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

Parent = Context | Span | SpanContext | None
Carrier = Mapping[str, str] | Sequence[tuple[str, str]] | None
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_NO_SPAN = contextlib.nullcontext()  # reusable and reentrant: what span() is when off
_PROPAGATOR = TraceContextTextMapPropagator()


def wall_ns(monotonic_s: float) -> int:
    """A ``time.monotonic()`` reading as epoch nanoseconds, the clock spans are stamped with."""
    return time.time_ns() - int((time.monotonic() - monotonic_s) * 1e9)


def parse_endpoint(endpoint: str) -> tuple[str, bool]:
    """``(host:port, insecure)`` for ``host:port``, ``http://host:port`` or ``https://...``.

    Parsed here rather than by the exporter, which reads a bare ``host:port`` as a URL scheme and
    then tries TLS against a plain-text collector."""
    scheme, _, rest = endpoint.strip().rpartition("://")
    address = rest.split("/", 1)[0]
    if scheme not in ("", "http", "https") or not address:
        raise ValueError(f"tracing endpoint must be host:port, http://host:port or "
                         f"https://host:port. Received: {endpoint!r}")
    return address, scheme != "https"


def _span_context(value: Parent) -> SpanContext | None:
    if isinstance(value, Context):
        value = trace.get_current_span(value)
    if isinstance(value, Span):
        value = value.get_span_context()
    return value if value is not None and value.is_valid else None


def _context(parent: Parent) -> Context | None:
    """A parent as the Context the SDK takes; None: the current one (a new trace if empty)."""
    if parent is None or isinstance(parent, Context):
        return parent
    span = parent if isinstance(parent, Span) else NonRecordingSpan(parent)
    return trace.set_span_in_context(span)


def _links(links: Sequence[SpanContext | Span]) -> list[Link]:
    contexts = (_span_context(link) for link in links)
    return [Link(context) for context in contexts if context is not None]


class Tracing:
    """Off (and free: no SDK objects, every call a constant-time no-op) unless an endpoint is
    set. Thread-safe, like the SDK under it: batch threads and the event loop share one."""

    def __init__(self, provider: Any = None) -> None:
        """``provider``: an SDK ``TracerProvider`` (tests may give one with their own
        exporter); None: off."""
        self._provider = provider
        self._tracer = None if provider is None else provider.get_tracer("serving.engine")
        self.enabled = self._tracer is not None

    @classmethod
    def from_settings(cls, endpoint: str | None, service_name: str = "servectl-serve",
                      environ: Mapping[str, str] = os.environ) -> Tracing:
        """endpoint: ``--tracing_otlp_endpoint`` (``host:port`` or ``http://host:port``,
        OTLP/gRPC, plain text unless ``https://``). With none, the standard
        ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT`` turn it on
        (unless ``OTEL_TRACES_EXPORTER=none``); ``OTEL_SDK_DISABLED=true`` turns it off either
        way. ``OTEL_SERVICE_NAME`` overrides ``service_name``; the exporter's and the batch
        processor's other ``OTEL_*`` settings (headers, timeout, ``OTEL_BSP_*``, the sampler)
        apply as the SDK reads them."""
        if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return cls()
        if not endpoint and environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() != "none":
            endpoint = next((environ[v] for v in ENDPOINT_VARIABLES if environ.get(v)), None)
        if not endpoint:
            return cls()
        address, insecure = parse_endpoint(endpoint)
        # Imported only when on: the SDK and the exporter's gRPC stubs are not needed otherwise.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create({SERVICE_NAME: environ.get("OTEL_SERVICE_NAME")
                                    or service_name})
        provider = TracerProvider(resource=resource)
        exporter = OTLPSpanExporter(endpoint=address, insecure=insecure)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider)

    def continue_trace(self, carrier: Carrier) -> Context | None:
        """The caller's context from ``traceparent`` / ``tracestate`` in HTTP headers (any
        case) or gRPC metadata (lower-case keys, as pairs); None without a valid one."""
        if self._tracer is None or not carrier:
            return None
        if not isinstance(carrier, Mapping):
            carrier = dict(carrier)
        context = _PROPAGATOR.extract(carrier)
        return context if _span_context(context) is not None else None

    def span(self, name: str, parent: Parent = None, attributes: Mapping | None = None,
             links: Sequence[SpanContext | Span] = (), start_ns: int | None = None,
             kind: SpanKind = SpanKind.INTERNAL) -> contextlib.AbstractContextManager[Span | None]:
        """A span open while the ``with`` block runs (None when off), ending when it exits; an
        exception leaving the block is recorded on it and sets its status to ERROR. It is not
        made the current span: children name it as their ``parent``, so it works the same
        across threads and tasks. ``parent`` None: the current context, or a new trace."""
        if self._tracer is None:
            return _NO_SPAN
        return self._span(name, parent, attributes, links, start_ns, kind)

    @contextlib.contextmanager
    def _span(self, name, parent, attributes, links, start_ns, kind) -> Iterator[Span]:
        span = self._tracer.start_span(name, _context(parent), kind, attributes,
                                       _links(links), start_ns)
        try:
            yield span
        except Exception as error:
            span.record_exception(error)
            span.set_status(Status(SpanStatus.ERROR, f"{type(error).__name__}: {error}"))
            raise
        finally:
            span.end()

    def server_span(self, name: str, carrier: Carrier, attributes: Mapping
                    ) -> contextlib.AbstractContextManager[Span | None]:
        """A front end's span of one request, continuing the caller's trace if it sent one."""
        if self._tracer is None:
            return _NO_SPAN
        return self.span(name, self.continue_trace(carrier), attributes, kind=SpanKind.SERVER)

    def child(self, name: str, traceparent: str | None, attributes: Mapping | None = None
              ) -> contextlib.AbstractContextManager[Span | None]:
        """A span under the request whose ``traceparent`` is given (a request context's, in
        whichever process); nothing when off or outside a traced request."""
        if self._tracer is None or traceparent is None:
            return _NO_SPAN
        return self.span(name, self.context_from_traceparent(traceparent), attributes)

    @staticmethod
    def annotate(span: Span | None, attributes: Mapping | None = None,
                 error: str | None = None) -> None:
        """Add what is known only later (the version that answered; an error answered)."""
        if span is None:
            return
        if attributes:
            span.set_attributes(attributes)
        if error is not None:
            span.set_status(Status(SpanStatus.ERROR, error))

    def record(self, name: str, parent: Parent, start_ns: int, end_ns: int,
               attributes: Mapping | None = None, links: Sequence[SpanContext | Span] = (),
               kind: SpanKind = SpanKind.INTERNAL, error: str | None = None) -> SpanContext | None:
        """A finished span whose times are already known; its context (to link to or parent
        from), None when off. ``error``: a description that sets its status to ERROR."""
        if self._tracer is None:
            return None
        span = self._tracer.start_span(name, _context(parent), kind, attributes,
                                       _links(links), start_ns)
        if error is not None:
            span.set_status(Status(SpanStatus.ERROR, error))
        span.end(end_ns)
        return span.get_span_context()

    def traceparent(self, value: Parent) -> str | None:
        """The W3C ``traceparent`` of a span or context, to carry it across a process boundary
        as a plain string; None when off, without a valid span, or for a span the sampler left
        out (``OTEL_TRACES_SAMPLER``): its children would not be recorded, so nothing below a
        request that is not sampled spends a cycle on tracing."""
        if self._tracer is None or (isinstance(value, Span) and not value.is_recording()):
            return None
        context = _span_context(value)
        if context is None:
            return None
        return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"

    def context_from_traceparent(self, value: str | None) -> Context | None:
        """The context a :meth:`traceparent` string names (None when off, absent or invalid)."""
        if self._tracer is None or value is None:
            return None
        return self.continue_trace({"traceparent": value})

    def flush(self, timeout_s: float = 5) -> bool:
        """Export what is queued now; False if that took longer than ``timeout_s``."""
        return self._bounded(lambda: self._provider.force_flush(), timeout_s)

    def shutdown(self, timeout_s: float = 5) -> None:
        """Flush what is queued and stop; waits at most ``timeout_s`` for a slow collector."""
        self._bounded(lambda: self._provider.shutdown(), timeout_s)

    def _bounded(self, work, timeout_s: float) -> bool:
        # The SDK's own flush and shutdown ignore or stretch their timeouts while an export
        # retries against an absent collector; a daemon thread bounds what the caller waits.
        if self._provider is None:
            return True
        thread = threading.Thread(target=work, name="tracing-flush", daemon=True)
        thread.start()
        thread.join(timeout_s)
        return not thread.is_alive()


OFF = Tracing()
"""Tracing off: what a part built without a :class:`Tracing` uses."""
