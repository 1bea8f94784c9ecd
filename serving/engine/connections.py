"""REST connections bounded in number and in time, so that slow or idle clients cannot take the
server from the others.

* A connection must complete each request's headers within ``--rest_api_idle_timeout_seconds``
  of opening or of its previous answer (aiohttp's keep-alive timer, which partial headers do
  not reset), and its body may pause no longer than that between two reads (408 after it); a
  TLS handshake must finish within the same time.
* At most ``--rest_api_max_connections`` are open at once (by default three quarters of the
  open-file limit, so that models, gRPC and the source keep descriptors): one more is answered
  ``503`` with a JSON reason and closed at once, and counted in
  ``:platform:rest_connections_refused``. Before, 1,500 idle sockets at a 1,024 limit made every
  REST request and ``/readyz`` fail and the source log "Too many open files".
"""

from __future__ import annotations

import asyncio
import resource
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

REFUSAL_BODY = b'{"error": "Too many connections: the server is at --rest_api_max_connections"}'
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
           b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(REFUSAL_BODY)) + REFUSAL_BODY
FILE_LIMIT_SHARE = 0.75


def default_max_connections() -> int:
    """Three quarters of this process's open-file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, int(soft * FILE_LIMIT_SHARE))


@dataclass(frozen=True)
class ConnectionLimits:
    idle_timeout_s: float
    max_connections: int
    on_refused: Callable[[], None]


class _Refusal(asyncio.Protocol):
    """Answers 503 and closes: the connection's descriptor is given back at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(REFUSAL)  # type: ignore[attr-defined]
        transport.close()


class BoundedSite(web.BaseSite):
    """A TCP site (SO_REUSEPORT, as ``--workers`` needs) with a connection limit and a TLS
    handshake timeout."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, max_connections: int,
                 handshake_timeout_s: float, on_refused: Callable[[], None],
                 shutdown_timeout: float, ssl_context: ssl.SSLContext | None = None):
        super().__init__(runner, shutdown_timeout=shutdown_timeout, ssl_context=ssl_context)
        self._host, self._port = host, port
        self._max_connections = max_connections
        self._handshake_timeout_s = handshake_timeout_s
        self._on_refused = on_refused

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None

        def protocol() -> asyncio.Protocol:
            if len(server.connections) >= self._max_connections:
                self._on_refused()
                return _Refusal()
            return server()

        self._server = await asyncio.get_running_loop().create_server(
            protocol, self._host, self._port, ssl=self._ssl_context, reuse_address=True,
            reuse_port=True, backlog=1024,
            ssl_handshake_timeout=self._handshake_timeout_s if self._ssl_context else None)
