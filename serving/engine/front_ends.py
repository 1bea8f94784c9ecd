"""The listeners of one process: the gRPC server, the REST port and the admin address.

The same code serves in the engine's own process (one process, everything in it) and in each
front-end process (:mod:`serving.engine.frontend_process`), where the service, health, reloads
and metrics are the model process's, reached through :mod:`serving.engine.remote`. Which
listeners a process opens is the caller's choice: the shared ports in every front end, the
admin address and the gRPC unix socket (which cannot be shared) in the model process only.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import grpc

from tf_serving_platform.serving.engine import grpc_api, rest, tls
from tf_serving_platform.serving.engine.body_decoders import BodyDecoders
from tf_serving_platform.serving.engine.config_protos import SSLConfig
from tf_serving_platform.serving.engine.connections import ConnectionLimits, default_max_connections
from tf_serving_platform.serving.engine.ledger import Ledger
from tf_serving_platform.serving.engine.options import ServerOptions
from tf_serving_platform.serving.engine.request_memory import RequestMemory, budget_bytes
from tf_serving_platform.serving.engine.tracing import OFF, Tracing

HEALTH_INTERVAL_S = 0.25


@dataclass(frozen=True)
class FrontEndSettings:
    """What the listeners are built from (sent to each front-end process)."""

    options: ServerOptions
    metrics_path: str | None
    ssl: SSLConfig | None


@dataclass(frozen=True)
class Listeners:
    """Which of the configured listeners this process opens."""

    shared_ports: bool
    """``--port`` and ``--rest_api_port`` (shared with other processes through SO_REUSEPORT)."""
    private: bool
    """``--grpc_socket_path`` and ``--admin_address``: one process only."""


class FrontEnds:
    """Builds, starts and stops one process's listeners over a service (local or remote)."""

    def __init__(self, settings: FrontEndSettings, service, health, reloads, metrics,
                 listeners: Listeners, share: int = 1, ledger: Ledger | None = None,
                 decoder_processes: int = 0, tracing: Tracing = OFF):
        """``ledger``: the request memory budget's, shared with the server's other processes;
        ``share``: how many processes split ``--rest_api_max_connections`` (each its part:
        the limit guards each process's descriptors); ``tracing``: this process's spans."""
        self._tracing = tracing
        self._settings, self._options = settings, settings.options
        self._listeners, self._share = listeners, share
        self._runners = []
        self._metrics = metrics
        self.health = health
        self.reporter = grpc_api.HealthReporter(health)
        memory_budget = budget_bytes(self._options.request_memory_budget_bytes)
        self.request_memory = RequestMemory(memory_budget, metrics, ledger)
        self.body_decoders = BodyDecoders(decoder_processes) if self._serves_rest() else None
        self.rest_api = rest.RestApi(service, health, self.request_memory, self.body_decoders,
                                     self._options.rest_api_timeout_in_ms,
                                     self._options.rest_api_idle_timeout_seconds,
                                     self._options.rest_api_enable_cors_support,
                                     settings.metrics_path, tracing,
                                     self._options.enable_v2_protocol)
        self._service, self._reloads = service, reloads
        self._grpc: grpc.aio.Server | None = None  # built on the running loop, in start()
        self._stopping = asyncio.Event()
        self._health_task: asyncio.Task | None = None

    def _grpc_addresses(self) -> list[str]:
        options, listeners = self._options, self._listeners
        return ([f"{options.host}:{options.port}"] if options.port and listeners.shared_ports
                else []) + ([f"unix:{options.grpc_socket_path}"]
                            if options.grpc_socket_path and listeners.private else [])

    def _serves_rest(self) -> bool:
        options = self._options
        return bool(self._listeners.shared_ports and options.rest_api_port
                    and options.rest_api_port != options.port)

    async def start(self, announce: bool = True) -> None:
        """Open the listeners; ``announce`` prints TensorFlow Serving's start-up lines."""
        options, ssl_config = self._options, self._settings.ssl
        self._grpc = grpc_api.build_server(self._service, self._reloads, self.reporter,
                                           self.request_memory,
                                           self._options.grpc_channel_arguments, self._tracing,
                                           v2_health=self.health if self._options.enable_v2_protocol
                                           else None)
        for address in self._grpc_addresses():
            if ssl_config:
                self._grpc.add_secure_port(address, tls.grpc_credentials(ssl_config))
            else:
                self._grpc.add_insecure_port(address)
        await self._grpc.start()
        grace = options.grace_period_seconds
        if self._serves_rest():
            context = tls.rest_ssl_context(ssl_config) if options.rest_api_enable_ssl else None
            app = self.rest_api.app(options.rest_api_max_body_bytes,
                                    with_admin=not options.admin_address)
            self._runners.append(await rest.start(app, options.host, options.rest_api_port,
                                                  grace, self._connection_limits(), context))
            self.body_decoders.warm()
        if options.admin_address and self._listeners.private:
            host, _, port = options.admin_address.rpartition(":")
            self._runners.append(await rest.start(self.rest_api.admin_app(), host or options.host,
                                                  int(port), grace, self._connection_limits()))
        self._health_task = asyncio.create_task(self._report_health())
        if announce:
            self.announce()

    def announce(self, shared: bool | None = None) -> None:
        """TensorFlow Serving's lines saying where it listens (people and scripts wait for
        them); ``shared`` overrides whether the shared ports are named."""
        options = self._options
        shared = self._listeners.shared_ports if shared is None else shared
        for address in ([f"{options.host}:{options.port}"] if options.port and shared else []) \
                + ([f"unix:{options.grpc_socket_path}"] if options.grpc_socket_path else []):
            print(f"Running gRPC ModelServer at {address} ...", flush=True)
        if shared and options.rest_api_port and options.rest_api_port != options.port:
            print(f"Exporting HTTP/REST API at:{options.host}:{options.rest_api_port} ...",
                  flush=True)
        if options.admin_address:
            print(f"Serving health and metrics at {options.admin_address} ...", flush=True)

    def _connection_limits(self) -> ConnectionLimits:
        """Each REST listener's own limit: the admin address keeps answering probes when the
        REST port is full."""
        configured = -(-self._options.rest_api_max_connections // self._share)  # rounded up
        return ConnectionLimits(self._options.rest_api_idle_timeout_seconds,
                                configured or default_max_connections(),
                                self._metrics.rest_connections_refused.inc)

    async def _report_health(self) -> None:
        while not self._stopping.is_set():
            await self.reporter.update()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), HEALTH_INTERVAL_S)

    async def stop(self, grace_s: float) -> None:
        """Health says NOT_SERVING, the listeners stop accepting and finish what they hold."""
        self._stopping.set()
        if self._health_task:
            await self._health_task
        await self.reporter.update()
        await asyncio.gather(*([self._grpc.stop(grace_s)] if self._grpc else []),
                             *(rest.stop(r) for r in self._runners))
        if self.body_decoders:
            self.body_decoders.close()
