"""gRPC clients for TensorFlow Serving: ``GrpcClient`` and ``AsyncGrpcClient`` (grpc.aio).

One channel per client, load-balanced with gRPC's client-side ``round_robin`` policy: give one
``dns:///name:8500`` target (a Kubernetes headless service: every replica's address, re-resolved
as replicas come and go) or several ``host:port`` targets, and calls spread over every replica
that is up. Unlike a connection-level load balancer in front of HTTP/2, this balances each
call, not each connection.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from tf_serving_platform.serving.client.api import AsyncApi, SyncApi
from tf_serving_platform.serving.client.core import DEFAULT_TIMEOUT_S, Call
from tf_serving_platform.serving.client.errors import ServingClientError
from tf_serving_platform.serving.client.grpc_calls import GrpcCalls, RpcRequest
from tf_serving_platform.serving.client.retry import RetryPolicy
from tf_serving_platform.serving.client.tracing import grpc_metadata
from tf_serving_platform.serving.client.v2_calls import V2GrpcCalls

__all__ = ["AsyncGrpcClient", "GrpcClient", "channel_target"]

MAX_MESSAGE_BYTES = 2**31 - 1  # what tensorflow_model_server accepts
Pem = bytes | str | Path


def _address(target: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    host = target.rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _resolved(target: str) -> str:
    """``host:port`` with the host resolved once to an IP address (IPv4 first)."""
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected host:port. Received: target={target!r}")
    if _address(target) is not None:
        return target
    infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    ip = infos[0][4][0]
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def channel_target(targets: str | Sequence[str]) -> str:
    """The channel target for one or several servers.

    One target is used as is (``host:port``, ``dns:///name:port``, ``unix:path``, ...). Several
    ``host:port`` targets become one ``ipv4:`` (or ``ipv6:``) address list, host names resolved
    once; for a set of replicas that changes, give one ``dns:///`` name instead.

    Example:
        >>> channel_target(["10.0.0.1:8500", "10.0.0.2:8500"])
        'ipv4:10.0.0.1:8500,10.0.0.2:8500'
    """
    if isinstance(targets, str):
        targets = [targets]
    if not targets:
        raise ValueError("at least one target is required")
    if len(targets) == 1:
        return targets[0]
    addresses = [_resolved(t) for t in targets]
    versions = {_address(a).version for a in addresses}  # type: ignore[union-attr]
    if len(versions) > 1:
        raise ValueError(f"targets mix IPv4 and IPv6 addresses: {addresses}")
    return f"ipv{versions.pop()}:{','.join(addresses)}"


def _pem(value: Pem | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


class _GrpcTransport:
    """The channel of both gRPC clients, and their shared constructor."""

    _grpc: Any = grpc  # the module whose channels this client opens: grpc or grpc.aio

    def __init__(self, targets: str | Sequence[str], *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 retry: RetryPolicy | None = None, tls: bool = False,
                 root_certificates: Pem | None = None, private_key: Pem | None = None,
                 certificate_chain: Pem | None = None, server_name: str | None = None,
                 options: Sequence[tuple[str, Any]] = (), metadata_ttl_s: float = 60.0,
                 protocol: str = "tfserving") -> None:
        if protocol not in ("tfserving", "v2"):
            raise ValueError(f"protocol must be 'tfserving' or 'v2'. Received: {protocol!r}")
        calls = GrpcCalls() if protocol == "tfserving" else V2GrpcCalls()
        super().__init__(calls, timeout_s, retry, metadata_ttl_s)  # type: ignore[call-arg]
        self.target = channel_target(targets)
        policy: RetryPolicy = self.retry  # type: ignore[attr-defined]
        channel_options = [
            ("grpc.lb_policy_name", "round_robin"),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            # Reconnect at the retry policy's pace, so that a retry after "connection refused"
            # finds a fresh connection attempt rather than gRPC's default 1-120 s backoff.
            ("grpc.initial_reconnect_backoff_ms", int(policy.initial_backoff_s * 1000)),
            ("grpc.max_reconnect_backoff_ms", int(policy.max_backoff_s * 1000)),
        ]
        if server_name is not None:
            channel_options.append(("grpc.ssl_target_name_override", server_name))
        channel_options.extend(options)
        secure = tls or any(v is not None for v in (root_certificates, private_key,
                                                    certificate_chain))
        if secure:
            credentials = grpc.ssl_channel_credentials(
                _pem(root_certificates), _pem(private_key), _pem(certificate_chain))
            self._channel = self._grpc.secure_channel(self.target, credentials, channel_options)
        else:
            self._channel = self._grpc.insecure_channel(self.target, channel_options)
        prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._methods: dict[str, Callable] = {
            name: getattr(prediction, name)
            for name in ("Predict", "Classify", "Regress", "GetModelMetadata")}
        self._methods.update({name: getattr(models, name)
                              for name in ("GetModelStatus", "HandleReloadConfigRequest")})
        if protocol == "v2":
            from tritonclient.grpc import service_pb2_grpc

            inference = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
            self._methods.update({name: getattr(inference, name) for name in
                                  ("ModelInfer", "ModelMetadata", "RepositoryIndex")})

    def _method(self, call: Call) -> tuple[Callable, Any]:
        request: RpcRequest = call.request
        return self._methods[request.method], request.message


def _rpc_error(error: grpc.RpcError, model: str) -> ServingClientError:
    return ServingClientError(error.code(), error.details() or "", model)


class GrpcClient(_GrpcTransport, SyncApi):
    """A blocking client of TensorFlow Serving's gRPC API (see ``SyncApi``); thread-safe.

    Args:
        targets: ``host:port``, ``dns:///name:port``, or several ``host:port`` to balance over.
        timeout_s: the default deadline of a call, retries included.
        retry: retries on UNAVAILABLE (server down or overloaded) only.
        tls: use TLS with the system's root certificates (implied by the next three).
        root_certificates: PEM (bytes or a path) of the CAs to trust.
        private_key: PEM of the client key, for mutual TLS.
        certificate_chain: PEM of the client certificate chain, for mutual TLS.
        server_name: the name the server's certificate must carry, when it is not the
            target's host.
        options: more channel arguments, e.g. ``[("grpc.keepalive_time_ms", 30000)]``.
        metadata_ttl_s: how long a model's signatures are reused to name a bare input.
        protocol: ``"tfserving"`` (TensorFlow Serving's gRPC API) or ``"v2"`` (the Open Inference
            Protocol's ``inference.GRPCInferenceService``, with tritonclient's stubs).

    Example:
        >>> with GrpcClient(["10.0.0.1:8500", "10.0.0.2:8500"]) as client:
        ...     client.predict("half_plus_two", [1.0, 2.0])
        {'y': array([2.5, 3. ], dtype=float32)}
    """

    def _attempt(self, call: Call, timeout: float) -> Any:
        method, message = self._method(call)
        try:
            response = method(message, timeout=timeout, metadata=grpc_metadata() or None)
        except grpc.RpcError as e:
            raise _rpc_error(e, call.model) from None
        return call.finish(response)

    def close(self) -> None:
        self._channel.close()


class AsyncGrpcClient(_GrpcTransport, AsyncApi):
    """``GrpcClient`` for asyncio, on a ``grpc.aio`` channel; create it inside the event loop
    that uses it, and close it with ``await client.close()`` or ``async with``."""

    _grpc = grpc.aio

    async def _attempt(self, call: Call, timeout: float) -> Any:
        method, message = self._method(call)
        try:
            response = await method(message, timeout=timeout,
                                    metadata=grpc_metadata() or None)
        except grpc.RpcError as e:
            raise _rpc_error(e, call.model) from None
        return call.finish(response)

    async def close(self) -> None:
        await self._channel.close()
