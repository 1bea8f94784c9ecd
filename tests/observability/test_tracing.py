"""Tracing building blocks against a real OTLP/gRPC receiver: off is free, a caller's
``traceparent`` is continued, explicit times and links arrive as recorded, a context crosses
"processes" as a string, the standard environment turns it on, and shutdown flushes."""

from __future__ import annotations

import os
import re
import time

import pytest
from multidict import CIMultiDict
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from benchmarks.otlp_receiver import OtlpReceiver
from tf_serving_platform.serving.client.tracing import grpc_metadata, inject_headers
from tf_serving_platform.serving.engine.tracing import Tracing, parse_endpoint, wall_ns

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
SERVER = 2  # OTLP Span.SpanKind.SPAN_KIND_SERVER
ERROR = 2  # OTLP Status.STATUS_CODE_ERROR


@pytest.fixture(autouse=True)
def _otel_environment(monkeypatch):
    """No ambient OTEL_* setting leaks in; the batch processor exports every 20 ms, so waits
    for spans are short without flushing."""
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")


def _caller_span() -> NonRecordingSpan:
    return NonRecordingSpan(SpanContext(int(CALLER_TRACE, 16), int(CALLER_SPAN, 16),
                                        is_remote=True, trace_flags=TraceFlags(1)))


def test_disabled_tracing_makes_no_sdk_objects_and_no_spans(otlp_receiver):
    for tracing in (Tracing.from_settings(None, environ={}),
                    Tracing.from_settings(otlp_receiver.endpoint,
                                          environ={"OTEL_SDK_DISABLED": "true"}),
                    Tracing.from_settings(None, environ={"OTEL_TRACES_EXPORTER": "none",
                                                         "OTEL_EXPORTER_OTLP_ENDPOINT":
                                                         otlp_receiver.url})):
        assert not tracing.enabled and tracing._provider is None and tracing._tracer is None
        assert tracing.continue_trace({"traceparent": CALLER}) is None
        assert tracing.context_from_traceparent(CALLER) is None
        with tracing.span("nothing", attributes={"a": 1}) as span:
            assert span is None
        assert tracing.record("nothing", None, 1, 2, links=[_caller_span()]) is None
        assert tracing.traceparent(_caller_span()) is None
        assert tracing.flush() is True
        tracing.shutdown()

    marker = Tracing.from_settings(otlp_receiver.endpoint)
    with marker.span("marker"):
        pass
    marker.shutdown()
    assert [span.name for span in otlp_receiver.spans()] == ["marker"]


def test_continues_a_callers_traceparent(otlp_receiver):
    tracing = Tracing.from_settings(otlp_receiver.endpoint, service_name="engine-under-test")
    rest = tracing.continue_trace(CIMultiDict({"Traceparent": CALLER, "Tracestate": "k=v"}))
    grpc = tracing.continue_trace([("traceparent", CALLER), ("user-agent", "grpc-python")])
    assert tracing.continue_trace({"traceparent": "00-garbage"}) is None
    assert tracing.continue_trace({}) is None and tracing.continue_trace(None) is None
    with tracing.span("rest", rest, {"model": "half_plus_two"}, kind=SpanKind.SERVER) as span:
        assert span is not None and span.is_recording()
        with tracing.span("child", span):
            pass
    with tracing.span("grpc", grpc):
        pass
    with tracing.span("root", tracing.continue_trace({"traceparent": "nonsense"})):
        pass

    received = {s.name: s for s in otlp_receiver.wait_for(lambda spans: len(spans) == 4
                                                          and spans)}
    for name in ("rest", "grpc"):
        assert received[name].trace_id == CALLER_TRACE
        assert received[name].parent_span_id == CALLER_SPAN
    assert received["rest"].kind == SERVER
    assert received["rest"].attributes == {"model": "half_plus_two"}
    assert received["rest"].service == "engine-under-test"
    assert received["child"].trace_id == CALLER_TRACE
    assert received["child"].parent_span_id == received["rest"].span_id
    assert received["root"].trace_id != CALLER_TRACE and received["root"].parent_span_id == ""
    tracing.shutdown()


def test_recorded_spans_keep_their_times_and_links(otlp_receiver):
    tracing = Tracing.from_settings(otlp_receiver.endpoint)
    caller = tracing.continue_trace({"traceparent": CALLER})
    now = time.time_ns()
    waits = [tracing.record("queue", caller, now + i, now + 1_000 + i, {"task": i})
             for i in range(3)]
    batch = tracing.record("batch", None, now + 5_000, now + 9_000, {"batch_size": 3},
                           links=waits, error="boom")
    assert batch is not None and all(w.trace_id == int(CALLER_TRACE, 16) for w in waits)

    spans = otlp_receiver.wait_for(lambda spans: len(spans) == 4 and spans)
    queued = sorted((s for s in spans if s.name == "queue"), key=lambda s: s.attributes["task"])
    for i, span in enumerate(queued):
        assert (span.start_ns, span.end_ns) == (now + i, now + 1_000 + i)
        assert span.parent_span_id == CALLER_SPAN
    run = next(s for s in spans if s.name == "batch")
    assert (run.start_ns, run.end_ns) == (now + 5_000, now + 9_000)
    assert run.links == [(CALLER_TRACE, s.span_id) for s in queued]
    assert (run.status_code, run.status_message) == (ERROR, "boom")
    assert run.trace_id != CALLER_TRACE  # a batch is its own trace, linked to its requests

    started = time.monotonic()
    assert abs(wall_ns(started) - time.time_ns()) < 50_000_000
    tracing.shutdown()


def test_a_span_records_the_exception_that_leaves_it(otlp_receiver):
    tracing = Tracing.from_settings(otlp_receiver.endpoint)
    with pytest.raises(ValueError), tracing.span("fails", start_ns=time.time_ns() - 10**6):
        raise ValueError("bad input")
    span = otlp_receiver.named("fails")
    assert (span.status_code, span.status_message) == (ERROR, "ValueError: bad input")
    assert span.events == ["exception"] and span.end_ns - span.start_ns >= 10**6
    tracing.shutdown()


def test_a_traceparent_string_crosses_processes(otlp_receiver):
    front = Tracing.from_settings(otlp_receiver.endpoint, service_name="front")
    host = Tracing.from_settings(otlp_receiver.url, service_name="host")
    with front.span("front", front.continue_trace({"traceparent": CALLER})) as span:
        carried = front.traceparent(span)
        assert re.fullmatch(f"00-{CALLER_TRACE}-[0-9a-f]{{16}}-01", carried)
        now = time.time_ns()
        host.record("host", host.context_from_traceparent(carried), now, now + 10)
    assert host.context_from_traceparent("00-xyz") is None
    assert host.context_from_traceparent(None) is None
    assert front.traceparent(None) is None  # no current span

    received = {s.name: s for s in otlp_receiver.wait_for(lambda spans: len(spans) == 2
                                                          and spans)}
    assert received["host"].trace_id == received["front"].trace_id == CALLER_TRACE
    assert received["host"].parent_span_id == received["front"].span_id == carried[36:52]
    assert (received["front"].service, received["host"].service) == ("front", "host")
    front.shutdown()
    host.shutdown()


def test_the_standard_environment_turns_it_on(otlp_receiver):
    tracing = Tracing.from_settings(None, environ={"OTEL_EXPORTER_OTLP_ENDPOINT":
                                                   otlp_receiver.url})
    assert tracing.enabled
    with tracing.span("from-env"):
        pass
    assert otlp_receiver.named("from-env").service == "servectl-serve"
    tracing.shutdown()

    specific = Tracing.from_settings(None, environ={
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",  # never used: the next one wins
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": otlp_receiver.url,
        "OTEL_SERVICE_NAME": "named-by-env"})
    with specific.span("from-traces-env"):
        pass
    assert otlp_receiver.named("from-traces-env").service == "named-by-env"
    specific.shutdown()


def test_shutdown_flushes_what_is_queued(otlp_receiver, monkeypatch):
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")  # only a flush exports
    tracing = Tracing.from_settings(otlp_receiver.endpoint)
    with tracing.span("flushed"):
        pass
    assert tracing.flush() and [s.name for s in otlp_receiver.spans()] == ["flushed"]
    for i in range(5):
        with tracing.span(f"queued-{i}"):
            pass
    assert len(otlp_receiver.spans()) == 1
    tracing.shutdown()
    assert len(otlp_receiver.spans()) == 6  # synchronously: no wait
    with tracing.span("after-shutdown"):  # dropped, not raised
        pass


def test_shutdown_is_bounded_when_the_collector_is_gone(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")  # the abandoned export ends soon
    receiver = OtlpReceiver()
    tracing = Tracing.from_settings(receiver.endpoint)
    receiver.close()
    with tracing.span("lost"):
        pass
    started = time.monotonic()
    tracing.shutdown(timeout_s=0.5)
    assert time.monotonic() - started < 1.5


def test_parse_endpoint():
    assert parse_endpoint("collector:4317") == ("collector:4317", True)
    assert parse_endpoint(" http://127.0.0.1:4317/ ") == ("127.0.0.1:4317", True)
    assert parse_endpoint("https://collector.example:443") == ("collector.example:443", False)
    for bad in ("ftp://collector:21", "http://", ""):
        with pytest.raises(ValueError, match="tracing endpoint"):
            parse_endpoint(bad)


def test_client_injection_continues_in_the_server(otlp_receiver):
    assert inject_headers({"Content-Type": "application/json"}) == {
        "Content-Type": "application/json"}
    assert grpc_metadata() == []
    with trace.use_span(_caller_span()):
        headers = inject_headers({"Content-Type": "application/json"})
        metadata = grpc_metadata()
    assert headers == {"Content-Type": "application/json", "traceparent": CALLER}
    assert metadata == [("traceparent", CALLER)]

    tracing = Tracing.from_settings(otlp_receiver.endpoint)
    with tracing.span("served", tracing.continue_trace(metadata)):
        pass
    assert otlp_receiver.named("served").parent_span_id == CALLER_SPAN
    tracing.shutdown()


def test_a_request_the_sampler_leaves_out_carries_no_parent_to_its_children(
        otlp_receiver, monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    tracing = Tracing.from_settings(otlp_receiver.endpoint)
    with tracing.server_span("request", {}, {"model": "m"}) as span:
        assert span is not None and not span.is_recording()
        assert tracing.traceparent(span) is None  # so no child span is even started
    with tracing.child("decode", None) as child:
        assert child is None
    tracing.shutdown()
    assert otlp_receiver.spans() == []
