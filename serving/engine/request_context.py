"""Which request the code running now serves: its id, for logs, traces and the request log.

A request id comes from the caller (``x-request-id``, a REST header or a gRPC metadata key, as
Envoy and nginx set it) or is made here; both front ends echo it back (a response header, gRPC
trailing metadata). It lives in a context variable, so every log line written while the request
runs names it, and it crosses into the model process with each call (:mod:`serving.engine.remote`).
"""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass

REQUEST_ID_KEY = "x-request-id"
MAX_REQUEST_ID_CHARS = 128


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str
    model: str = ""
    traceparent: str | None = None
    """The request's span as a W3C ``traceparent`` (tracing on), the parent of its children in
    any process (:mod:`serving.engine.tracing`)."""


current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "request_context", default=None)


def request_id(sent: str | None) -> str:
    """The caller's id when it is printable ASCII of at most 128 characters (so that a hostile
    one cannot forge log lines or grow them), else a new one."""
    if sent and len(sent) <= MAX_REQUEST_ID_CHARS and sent.isascii() and sent.isprintable():
        return sent
    return uuid.uuid4().hex


def begin(sent_id: str | None, model: str = "", traceparent: str | None = None
          ) -> RequestContext:
    """Start serving a request: its context is current until the task ends."""
    context = RequestContext(request_id(sent_id), model, traceparent)
    current.set(context)
    return context
