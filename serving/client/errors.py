"""The clients' one exception type, with canonical gRPC codes on both wires.

gRPC failures keep their status code. REST failures are mapped back from the HTTP status with
the inverse of ``serving.errors.HTTP_STATUS`` (TensorFlow Serving's ``ToHTTPStatusCode``), derived
from that table rather than written again, so both clients raise the same code for the same
server-side error wherever the table is one-to-one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import orjson

from tf_serving_platform.serving.errors import HTTP_STATUS, ServingError

__all__ = [
    "CODE_FOR_HTTP_STATUS",
    "ServingClientError",
    "client_errors",
    "code_for_http_status",
    "error_from_http",
]

# Several codes share a status (400: INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE; 409;
# 500): the first one the table lists is taken as the status's canonical code.
CODE_FOR_HTTP_STATUS: dict[int, grpc.StatusCode] = {}
for _code, _status in HTTP_STATUS.items():
    CODE_FOR_HTTP_STATUS.setdefault(_status, _code)

# Statuses the table never produces but that sit between a client and TensorFlow Serving: a load
# balancer (nginx) answers 502 when a replica is down (retryable, as gRPC treats a broken
# connection), and the embedded engine answers 413 for a body over its size limit (gRPC's
# answer to a message over its limit is RESOURCE_EXHAUSTED).
_PROXY_STATUS = {502: grpc.StatusCode.UNAVAILABLE, 413: grpc.StatusCode.RESOURCE_EXHAUSTED}
_MAX_BODY_CHARS = 200


def code_for_http_status(status: int) -> grpc.StatusCode:
    """Returns the canonical code of an HTTP status from a TensorFlow Serving REST API.

    Example:
        >>> code_for_http_status(404)
        <StatusCode.NOT_FOUND: (5, 'not found')>
    """
    if status in CODE_FOR_HTTP_STATUS:
        return CODE_FOR_HTTP_STATUS[status]
    return _PROXY_STATUS.get(status, grpc.StatusCode.UNKNOWN)


class ServingClientError(ServingError):
    """A failed call to a model server, whichever client and wire made it.

    It is a ``ServingError``, so ``code`` and ``message`` read as on the server; ``http_status`` is
    the REST status TensorFlow Serving answers for ``code``.

    Args:
        code: the canonical status code; UNAVAILABLE (server down, refusing or overloaded) is
            the only code the clients retry.
        message: the server's message, or the client's when the call never got an answer.
        model: the model the call was for ("" when none).

    Example:
        >>> str(ServingClientError(grpc.StatusCode.NOT_FOUND, "Servable not found", "m"))
        "NOT_FOUND: Servable not found (model 'm')"
    """

    def __init__(self, code: grpc.StatusCode, message: str, model: str = "") -> None:
        super().__init__(code, message)
        self.model = model

    def __str__(self) -> str:
        where = f" (model {self.model!r})" if self.model else ""
        return f"{self.code.name}: {self.message}{where}"

    def __repr__(self) -> str:
        return f"ServingClientError({self.code.name}, {self.message!r}, model={self.model!r})"


def error_from_http(status: int, body: bytes, model: str) -> ServingClientError:
    """The error a non-200 REST answer stands for: ``{"error": message}``, or the raw body
    (cut short) when a proxy or a non-``/v1/`` route answered with something else."""
    try:
        message = orjson.loads(body)["error"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        text = body.decode("utf-8", "replace").strip()
        message = f"HTTP {status}: {text[:_MAX_BODY_CHARS]}" if text else f"HTTP {status}"
    return ServingClientError(code_for_http_status(status), str(message), model)


@contextmanager
def client_errors(model: str) -> Iterator[None]:
    """Re-raises the shared codec's ``ServingError`` (a bad input, a malformed answer) as the
    client's one exception type, so callers catch a single class."""
    try:
        yield
    except ServingClientError:
        raise
    except ServingError as e:
        raise ServingClientError(e.code, e.message, model) from None
