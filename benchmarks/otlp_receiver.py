"""A real OTLP/gRPC trace receiver for the tests and the tracing benchmark: what a collector
would be sent, flattened.

The exporter under test speaks the real protocol to it (``TraceService.Export`` on a gRPC server
on 127.0.0.1, an ephemeral port), so a test sees exactly what leaves the process: ids, parents,
times, attributes, links and status, after batching and serialization.

    with OtlpReceiver() as receiver:
        tracing = Tracing.from_settings(receiver.endpoint)
        ...
        span = receiver.wait_for(lambda spans: next((s for s in spans if s.name == "x"), None))
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

T = TypeVar("T")


def _value(value) -> Any:
    """An OTLP ``AnyValue`` as a Python value (lists as tuples, maps as dicts)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return None if kind is None else getattr(value, kind)


def _attributes(pairs) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span; ids in lower-case hex ('' for no parent), times in epoch ns."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int  # opentelemetry.proto.trace.v1.Span.SpanKind: 1 internal, 2 server, 3 client
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    links: list[tuple[str, str]]
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    events: list[str]
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str = ""

    @property
    def service(self) -> str | None:
        return self.resource.get("service.name")


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(self, request, context):  # the gRPC method's name
        received = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(ReceivedSpan(
                        span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(),
                        span.name, span.kind, span.start_time_unix_nano, span.end_time_unix_nano,
                        _attributes(span.attributes),
                        [(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                        span.status.code, span.status.message,
                        [event.name for event in span.events], resource,
                        scope_spans.scope.name))
        self._receiver._add(received)
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    """An OTLP/gRPC trace receiver on 127.0.0.1; started on construction, stopped by
    :meth:`close` (or the ``with`` block's end)."""

    def __init__(self, port: int = 0) -> None:
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self),
                                                                  self._server)
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self._server.start()

    @property
    def endpoint(self) -> str:
        """``host:port``, as ``--tracing_otlp_endpoint`` takes it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://host:port``, as ``OTEL_EXPORTER_OTLP_ENDPOINT`` is usually written."""
        return f"http://{self.endpoint}"

    def _add(self, spans: list[ReceivedSpan]) -> None:
        with self._lock:
            self._spans.extend(spans)

    def spans(self) -> list[ReceivedSpan]:
        """A copy of every span received so far, in arrival order."""
        with self._lock:
            return list(self._spans)

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()

    def wait_for(self, predicate: Callable[[list[ReceivedSpan]], T], timeout: float = 10,
                 interval: float = 0.02) -> T:
        """Poll ``predicate(spans())`` until it returns something truthy, and return that;
        AssertionError (with what did arrive) after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            result = predicate(spans)
            if result:
                return result
            if time.monotonic() >= deadline:
                names = [span.name for span in spans]
                raise AssertionError(f"no such spans within {timeout}s; received {names}")
            time.sleep(interval)

    def named(self, name: str, timeout: float = 10) -> ReceivedSpan:
        """The first span called ``name``, waiting for it."""
        return self.wait_for(lambda spans: next((s for s in spans if s.name == name), None),
                             timeout)

    def close(self) -> None:
        self._server.stop(grace=None).wait()

    def __enter__(self) -> OtlpReceiver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def format_trace(spans: list[ReceivedSpan]) -> str:
    """One trace as an indented tree: name, duration, attributes, and the spans it links to."""
    by_parent: dict[str, list[ReceivedSpan]] = {}
    ids = {s.span_id for s in spans}
    for span in sorted(spans, key=lambda s: s.start_ns):
        by_parent.setdefault(span.parent_span_id if span.parent_span_id in ids else "", []
                             ).append(span)
    lines = []

    def add(span: ReceivedSpan, depth: int) -> None:
        attributes = " ".join(f"{k}={v}" for k, v in sorted(span.attributes.items()))
        links = f" links={len(span.links)}" if span.links else ""
        lines.append(f"{'  ' * depth}{span.name}  {(span.end_ns - span.start_ns) / 1e6:.2f} ms"
                     f"  {attributes}{links}".rstrip())
        for child in by_parent.get(span.span_id, []):
            add(child, depth + 1)
    for root in by_parent.get("", []):
        add(root, 0)
    return "\n".join(lines)


def main() -> None:
    """``python -m benchmarks.otlp_receiver --port 4317``: print each trace as a tree once no span
    of it has arrived for two seconds (for looking at what the engine exports)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=4317)
    args = parser.parse_args()
    printed: set[str] = set()
    with OtlpReceiver(args.port) as receiver:
        print(f"OTLP/gRPC receiver on {receiver.endpoint}", flush=True)
        while True:
            time.sleep(1)
            spans, now = receiver.spans(), time.time_ns()
            for trace_id in dict.fromkeys(s.trace_id for s in spans):
                mine = [s for s in spans if s.trace_id == trace_id]
                if trace_id not in printed and now - max(s.end_ns for s in mine) > 2e9:
                    printed.add(trace_id)
                    print(f"trace {trace_id}\n{format_trace(mine)}", flush=True)


if __name__ == "__main__":
    main()
