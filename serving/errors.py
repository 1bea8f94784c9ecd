"""One error type for the whole server, with TensorFlow Serving's canonical codes.

``ServingError`` is raised anywhere on the request path (codec, service, manager,
batcher). The gRPC front end aborts with ``error.code`` as is; the REST front end
answers ``{"error": error.message}`` with the HTTP status from ``HTTP_STATUS``, the
table of TensorFlow Serving's ``ToHTTPStatusCode`` (``model_servers/http_server.cc``).
"""

from __future__ import annotations

import grpc

__all__ = ["HTTP_STATUS", "ServingError", "http_status", "invalid_argument", "unimplemented"]

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
"""gRPC canonical code -> HTTP status, exactly as TensorFlow Serving's REST server maps them.

Note FAILED_PRECONDITION -> 400 (not 412) and CANCELLED -> 499 (nginx's "client closed").
"""


def http_status(code: grpc.StatusCode) -> int:
    """Returns the HTTP status TensorFlow Serving answers for a canonical code.

    Args:
        code: the error's gRPC status code.

    Returns:
        The status from ``HTTP_STATUS``; 500 for a code it does not list.
    """
    return HTTP_STATUS.get(code, 500)


class ServingError(Exception):
    """A request failure with a canonical gRPC code and TensorFlow Serving's message.

    The message is what the client sees: the REST body ``{"error": message}`` or the
    gRPC status details. Keep it to TensorFlow Serving's text where one exists.

    Args:
        code: the canonical status code, e.g. ``grpc.StatusCode.INVALID_ARGUMENT``.
        message: the user-facing message.

    Example:
        >>> error = ServingError(grpc.StatusCode.NOT_FOUND, "Servable not found for request: ...")
        >>> error.http_status
        404
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        """The HTTP status of this error on the REST API."""
        return http_status(self.code)

    def __reduce__(self):
        """Pickled with both arguments, so that it crosses a process pool whole."""
        return type(self), (self.code, self.message)

    def __repr__(self) -> str:
        return f"ServingError({self.code.name}, {self.message!r})"


def invalid_argument(message: str) -> ServingError:
    """Returns an INVALID_ARGUMENT (HTTP 400) error: the request itself is malformed."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def unimplemented(message: str) -> ServingError:
    """Returns an UNIMPLEMENTED (HTTP 501) error, e.g. a dtype JSON cannot express."""
    return ServingError(grpc.StatusCode.UNIMPLEMENTED, message)
