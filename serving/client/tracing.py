"""The caller's OpenTelemetry context on the wire: W3C ``traceparent`` (and whatever else the
global propagator writes, e.g. ``tracestate``, ``baggage``) in REST headers or gRPC metadata,
so the server's spans join the caller's trace.

Uses the caller's global propagator (``OTEL_PROPAGATORS``, W3C by default) and current context,
and costs one context look-up when there is no active span. Without ``opentelemetry-api``
installed, both functions do nothing: the client does not need it to run.
"""

from __future__ import annotations

try:
    from opentelemetry import propagate, trace
except ImportError:  # pragma: no cover - the light client without OpenTelemetry
    propagate = trace = None

__all__ = ["grpc_metadata", "inject_headers"]


def _active() -> bool:
    return trace is not None and trace.get_current_span().get_span_context().is_valid


def inject_headers(headers: dict) -> dict:
    """``headers`` with the current trace context added (in place, and returned)."""
    if _active():
        propagate.inject(headers)
    return headers


def grpc_metadata() -> list[tuple[str, str]]:
    """The current trace context as gRPC metadata pairs (lower-case keys); [] with none."""
    if not _active():
        return []
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(key.lower(), value) for key, value in carrier.items()]
