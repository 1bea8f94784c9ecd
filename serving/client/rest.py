"""REST clients for TensorFlow Serving's HTTP API: ``RestClient`` (urllib3) and ``AsyncRestClient``
(aiohttp). Both keep connections alive in a pool, so a stream of calls pays for one TCP (and
TLS) handshake per pooled connection, not one per call.

Importing this module does not import TensorFlow: the REST client is the light one, for
services and scripts that only need numpy.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import urllib3

from tf_serving_platform.serving.client.api import AsyncApi, SyncApi
from tf_serving_platform.serving.client.core import DEFAULT_TIMEOUT_S, Call
from tf_serving_platform.serving.client.errors import ServingClientError
from tf_serving_platform.serving.client.rest_calls import HttpRequest, RestCalls
from tf_serving_platform.serving.client.retry import RetryPolicy
from tf_serving_platform.serving.client.tracing import inject_headers
from tf_serving_platform.serving.client.v2_calls import V2RestCalls

__all__ = ["AsyncRestClient", "RestClient", "ssl_context"]

HEADERS = {"Content-Type": "application/json"}
Cert = str | Path | tuple[str | Path, str | Path]


def ssl_context(verify: bool | str | Path = True, cert: Cert | None = None) -> ssl.SSLContext:
    """The TLS settings of an ``https://`` server, for both REST clients.

    Args:
        verify: True to check the server against the system's CAs, a CA bundle path to check
            it against that, False not to check at all (test servers only).
        cert: a client certificate for mutual TLS: one PEM file holding certificate and key,
            or a ``(certificate, key)`` pair of paths.
    """
    context = ssl.create_default_context(cafile=str(verify) if isinstance(verify, str | Path)
                                         else None)
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        certfile, keyfile = (cert, None) if isinstance(cert, str | Path) else cert
        context.load_cert_chain(str(certfile), None if keyfile is None else str(keyfile))
    return context


class _RestTransport:
    """The server URL, the TLS settings and the shared constructor of both REST clients."""

    def __init__(self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 retry: RetryPolicy | None = None, verify: bool | str | Path = True,
                 cert: Cert | None = None, max_connections: int = 10,
                 metadata_ttl_s: float = 60.0, protocol: str = "tfserving") -> None:
        url = url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://. Received: url={url!r}")
        calls = {"tfserving": RestCalls, "v2": V2RestCalls}.get(protocol)
        if calls is None:
            raise ValueError(f"protocol must be 'tfserving' or 'v2'. Received: {protocol!r}")
        super().__init__(calls(), timeout_s, retry, metadata_ttl_s)  # type: ignore[call-arg]
        self.url = url
        self._tls = ssl_context(verify, cert) if url.startswith("https://") else None
        self._verify = verify is not False
        self._max_connections = max_connections
        self._connect()

    def _connect(self) -> None:
        """Sets up the connection pool (each client its own kind)."""
        raise NotImplementedError

    def _unreachable(self, error: BaseException, model: str) -> ServingClientError:
        while error.__cause__ is not None:  # the OS's reason, not the libraries' wrappers
            error = error.__cause__
        return ServingClientError(grpc.StatusCode.UNAVAILABLE,
                                  f"Cannot reach {self.url}: {error}", model)

    def _timed_out(self, timeout: float, model: str) -> ServingClientError:
        return ServingClientError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                  f"No answer from {self.url} within {timeout:.3g} s", model)


class RestClient(_RestTransport, SyncApi):
    """A blocking client of TensorFlow Serving's REST API (``predict``, ``classify``, ``regress``,
    ``status``, ``metadata``; see ``SyncApi``). Thread-safe: urllib3's pool serves many threads.

    Args:
        url: the server, e.g. ``http://localhost:8501``.
        timeout_s: the default deadline of a call, retries included.
        retry: retries on HTTP 503 / 502 and connection errors; ``RetryPolicy(max_attempts=1)``
            turns them off.
        verify: check the server's certificate: True (system CAs), a CA bundle path, False.
        cert: client certificate (and key) for mutual TLS, see ``ssl_context``.
        max_connections: connections kept alive per host.
        metadata_ttl_s: how long a model's signatures are reused to read predict answers.
        protocol: ``"tfserving"`` (TensorFlow Serving's REST API) or ``"v2"`` (the Open Inference
            Protocol's ``/v2``, see ``serving.client.v2_calls``).

    Example:
        >>> with RestClient("http://localhost:8501") as client:
        ...     client.predict("half_plus_two", {"x": [1.0, 2.0]})
        {'y': array([2.5, 3. ], dtype=float32)}
    """

    def _connect(self) -> None:
        tls: dict[str, Any] = {} if self._tls is None else {"ssl_context": self._tls}
        if self._tls is not None and not self._verify:
            tls.update(cert_reqs="CERT_NONE", assert_hostname=False)
        self._pool = urllib3.PoolManager(maxsize=self._max_connections, block=False,
                                         headers=HEADERS, **tls)

    def _attempt(self, call: Call, timeout: float) -> Any:
        request: HttpRequest = call.request
        try:
            response = self._pool.request(request.method, self.url + request.path,
                                          body=request.body, retries=False, redirect=False,
                                          headers=inject_headers({**HEADERS,
                                                                  **(request.headers or {})}),
                                          timeout=urllib3.Timeout(total=timeout))
        except urllib3.exceptions.NewConnectionError as e:  # a ConnectTimeoutError subclass
            raise self._unreachable(e, call.model) from None
        except urllib3.exceptions.TimeoutError:
            raise self._timed_out(timeout, call.model) from None
        except urllib3.exceptions.HTTPError as e:
            raise self._unreachable(e, call.model) from None
        return call.finish((response.status, response.data))

    def close(self) -> None:
        self._pool.clear()


class AsyncRestClient(_RestTransport, AsyncApi):
    """``RestClient`` for asyncio, on one ``aiohttp.ClientSession`` (created on the first call,
    inside the running loop). Close it with ``await client.close()`` or ``async with``."""

    def _connect(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            tls: ssl.SSLContext | bool = self._tls if self._tls is not None else True
            connector = aiohttp.TCPConnector(limit_per_host=self._max_connections, ssl=tls)
            self._session = aiohttp.ClientSession(connector=connector, headers=HEADERS)
        return self._session

    async def _attempt(self, call: Call, timeout: float) -> Any:
        request: HttpRequest = call.request
        try:
            async with self._open().request(
                    request.method, self.url + request.path, data=request.body,
                    headers=inject_headers(dict(request.headers or {})),
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                answer = (r.status, await r.read())
        except TimeoutError:
            raise self._timed_out(timeout, call.model) from None
        except aiohttp.ClientError as e:
            raise self._unreachable(e, call.model) from None
        return call.finish(answer)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
