"""Distributed tracing on a real engine (batching on, two front-end processes) against a real
OTLP receiver: a caller's trace is continued over REST and gRPC, and a batched request's span
tree (decode, queue, encode under the request; the batch linked to it, its model run under the
batch) arrives with model, version, signature and batch size."""

from __future__ import annotations

import contextlib

import numpy as np
from opentelemetry import context, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.helpers import models_config, send_json, serving
from tf_serving_platform.serving import codec
from tf_serving_platform.serving.client import RestClient

HPT = "half_plus_two"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
REST_SPAN, GRPC_SPAN, CLIENT_SPAN = "00f067aa0ba902b7", "00f067aa0ba902b8", "00f067aa0ba902b9"


@contextlib.contextmanager
def _caller(span_id: str):
    """The caller's own span is current, as in an instrumented application."""
    span = NonRecordingSpan(SpanContext(int(CALLER_TRACE, 16), int(span_id, 16), is_remote=False,
                                        trace_flags=TraceFlags(1)))
    token = context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        context.detach(token)


def _tree(receiver, trace_id: str, caller_span: str, name: str) -> dict:
    """The request span ``name`` whose parent is the caller's, and the spans under it."""
    def complete(found):
        """Every span of this request arrived: its children, its batch and the batch's run."""
        ours = [s for s in found if s.trace_id == trace_id]
        root = next((s for s in ours if s.parent_span_id == caller_span and s.name == name),
                    None)
        if root is None or len({s.name for s in ours if s.parent_span_id == root.span_id}) < 3:
            return None
        batch = next((s for s in ours if s.name == "batch"
                      and (trace_id, root.span_id) in s.links), None)
        if batch is None or not any(s.parent_span_id == batch.span_id for s in ours):
            return None
        return ours
    spans = receiver.wait_for(complete, timeout=30)
    root = next(s for s in spans if s.parent_span_id == caller_span and s.name == name)
    children = {s.name: s for s in spans if s.parent_span_id == root.span_id}
    return {"root": root, "children": children, "all": spans}


def test_a_batched_request_span_tree_over_both_wires(test_models, tmp_path, otlp_receiver):
    config = tmp_path / "models.config"
    config.write_text(models_config({HPT: test_models[HPT]}))
    with serving(f"--model_config_file={config}", "--enable_batching", "--frontend_processes=2",
                 f"--tracing_otlp_endpoint={otlp_receiver.endpoint}") as engine:
        assert send_json(engine, f"POST /v1/models/{HPT}:predict", {"instances": [1.0, 2.0]},
                         {"traceparent": f"00-{CALLER_TRACE}-{REST_SPAN}-01"}) == \
            (200, {"predictions": [2.5, 3.0]})
        with engine.channel() as channel:
            call = predict_pb2.PredictRequest()
            call.model_spec.name = HPT
            call.inputs["x"].CopyFrom(codec.ndarray_to_tensor_proto(np.float32([4.0])))
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                call, metadata=[("traceparent", f"00-{CALLER_TRACE}-{GRPC_SPAN}-01")],
                timeout=30)
        with _caller(CLIENT_SPAN), RestClient(engine.rest_url) as client:  # propagates it
            assert client.predict(HPT, [6.0])["y"].tolist() == [5.0]
        for caller, name in ((REST_SPAN, f"REST predict {HPT}"),
                             (GRPC_SPAN, f"gRPC Predict {HPT}"),
                             (CLIENT_SPAN, f"REST predict {HPT}")):
            tree = _tree(otlp_receiver, CALLER_TRACE, caller, name)
            root, children = tree["root"], tree["children"]
            assert root.name == name and root.attributes["model"] == HPT
            assert root.attributes["version"] == 1
            assert root.attributes["signature"] == "serving_default"
            assert {"decode", "queue", "encode"} <= set(children), sorted(children)
            batch = next(s for s in tree["all"] if s.name == "batch"
                         and (CALLER_TRACE, root.span_id) in s.links)
            assert batch.attributes["batch_size"] == (2 if caller == REST_SPAN else 1)
            assert batch.attributes["model"] == HPT and batch.attributes["version"] == 1
            model_run = next(s for s in tree["all"] if s.name == "model_run"
                             and s.parent_span_id == batch.span_id)
            assert batch.start_ns <= model_run.start_ns <= model_run.end_ns <= \
                batch.end_ns
            queue = children["queue"]
            assert queue.end_ns <= batch.start_ns + 1_000_000  # the wait ends as it runs
