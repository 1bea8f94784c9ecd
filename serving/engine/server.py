"""The composition root: builds the engine from :class:`ServerOptions` and runs it.

Start-up: both front ends listen at once (liveness answers, readiness says "not ready"), the
initial config loads; if a configured model cannot become available the process prints
``Failed to start server. Error: ...`` and exits 255, as ``tensorflow_model_server`` does.
SIGTERM/SIGINT: readiness and gRPC health turn NOT_SERVING, both front ends stop accepting and
finish requests in flight (bounded by ``--grace_period_seconds``), versions unload, exit 0. A
model run that never returns does not hold the exit: the process leaves without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

import tensorflow as tf
import uvloop

from tf_serving_platform.serving.engine import log_format, memory
from tf_serving_platform.serving.engine.batcher import BatchScheduler
from tf_serving_platform.serving.engine.core import ConfigFilePoller, ServerCore
from tf_serving_platform.serving.engine.cpus import usable_cpus
from tf_serving_platform.serving.engine.front_ends import (
    HEALTH_INTERVAL_S,
    FrontEnds,
    FrontEndSettings,
    Listeners,
)
from tf_serving_platform.serving.engine.frontend_processes import (
    FrontEndProcesses,
    FrontEndStartError,
)
from tf_serving_platform.serving.engine.health import Health
from tf_serving_platform.serving.engine.loader import make_loader
from tf_serving_platform.serving.engine.manager import Manager
from tf_serving_platform.serving.engine.metrics import Metrics
from tf_serving_platform.serving.engine.model_host import ModelHost
from tf_serving_platform.serving.engine.options import ServerOptions
from tf_serving_platform.serving.engine.reloads import ReloadGate
from tf_serving_platform.serving.engine.request_log import RequestLogs
from tf_serving_platform.serving.engine.service import PredictionService
from tf_serving_platform.serving.engine.settings import EngineSettings
from tf_serving_platform.serving.engine.source import FileSystemSource
from tf_serving_platform.serving.engine.tracing import Tracing
from tf_serving_platform.serving.engine.watchdog import ModelRuns, Watchdog
from tf_serving_platform.serving.errors import ServingError

log = logging.getLogger("serving")
EXIT_START_FAILED = 255


def _configure_tensorflow(options: ServerOptions) -> None:
    for flag in options.ineffective_flags():
        log.warning("%s has no effect in the embedded engine", flag)
    intra, inter = options.parallelism()
    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)


class EngineServer:
    """All parts of one engine process, wired together."""

    def __init__(self, settings: EngineSettings):
        self.options = options = settings.options
        self.model_config = settings.model_config
        self.metrics = Metrics()
        self.executor = ThreadPoolExecutor(max_workers=max(4, usable_cpus()),
                                           thread_name_prefix="model")
        self.runs = ModelRuns(self.metrics)
        self.tracing = Tracing.from_settings(options.tracing_otlp_endpoint)
        self.batcher = BatchScheduler(settings.batching, self.metrics, self.runs,
                                      self.tracing) if settings.batching else None
        self.manager = Manager(make_loader(options, self.metrics), options.max_num_load_retries,
                               options.load_retry_interval_micros / 1e6,
                               drain_timeout_s=options.grace_period_seconds,
                               load_timeout_s=options.load_timeout_seconds)
        self.source = FileSystemSource(
            self.manager.set_aspired_versions, options.file_system_poll_wait_seconds,
            options.prefer_tflite_model,
            on_error=lambda model: self.metrics.base_path_errors.labels(model).inc())
        records = self.metrics.request_log_records
        self.request_logs = RequestLogs(
            on_dropped=lambda model: records.labels(model, "dropped").inc(),
            on_written=lambda model: records.labels(model, "written").inc())
        self.core = ServerCore(self.manager, self.source,
                               options.allow_version_labels_for_unavailable_models,
                               options.base_path_roots, self.request_logs)
        self.reloads = ReloadGate(self.core, options.admin_token_file)
        self.service = PredictionService(self.manager, self.executor, self.runs,
                                         self.core.configured_models, self.metrics, self.batcher,
                                         options.enable_signature_method_name_check,
                                         self.request_logs, frozenset(options.tags),
                                         self.tracing)
        self.metrics.is_known_model = self.core.is_configured
        self.metrics.refreshers.append(self._refresh_gauges)
        self.watchdog = Watchdog(options.stall_timeout_seconds, self.metrics,
                                 [self.runs.stall, *([self.batcher.stall] if self.batcher else [])])
        self.watchdog.watch_threads(self.manager.thread)
        self.engine_health = Health(self.service.ready, self.watchdog)
        count = frontend_process_count(options.frontend_processes)
        front_end_settings = FrontEndSettings(options, settings.metrics_path, settings.ssl)
        self.frontend_processes = None
        if count > 1:
            host = ModelHost(front_end_settings, self.service, self.engine_health, self.reloads,
                             self.metrics, count)
            self.frontend_processes = FrontEndProcesses(count, host)
        self.front_ends = FrontEnds(
            front_end_settings, self.service, self.engine_health, self.reloads, self.metrics,
            Listeners(shared_ports=count == 1, private=True),
            ledger=self.frontend_processes.ledger if self.frontend_processes else None,
            tracing=self.tracing)
        self.stopping = asyncio.Event()
        self.poller: ConfigFilePoller | None = None
        self._initial: asyncio.Task | None = None

    def _refresh_gauges(self) -> None:
        for model, versions in self.manager.snapshot().models.items():
            self.metrics.versions_loaded.labels(model).set(len(versions))
        self.metrics.queue_depth.set(self.batcher.queue_depth() if self.batcher else 0)

    async def _start_front_ends(self) -> None:
        """Listen: in this process, or in the front-end processes (then announced once they
        all listen; this process keeps the admin address and the gRPC unix socket)."""
        await self.front_ends.start(announce=self.frontend_processes is None)
        if self.frontend_processes is not None:
            await self.frontend_processes.start()
            self.front_ends.announce(shared=True)

    async def _push_health(self) -> None:
        """The front-end processes hear of every change of health within an interval."""
        while not self.stopping.is_set():
            self.frontend_processes.host.push_health()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), HEALTH_INTERVAL_S)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            await self._start_front_ends()
        except FrontEndStartError as e:
            print(f"Failed to start server. Error: {e}", flush=True)
            await self._shutdown()
            return EXIT_START_FAILED
        pushing = asyncio.create_task(self._push_health()) if self.frontend_processes else None
        status = await self._initial_load()
        if status == 0:
            await self.stopping.wait()
        self.stopping.set()  # a failed start stops too
        if pushing:
            await pushing
        await self._shutdown()
        return status

    def _on_signal(self, signum: int) -> None:
        """SIGTERM, SIGINT and SIGHUP (a closed terminal) drain and exit, in every state; a
        second SIGINT (Ctrl-C again) exits at once, as an impatient operator means."""
        if signum == signal.SIGINT and self.stopping.is_set():
            log.warning("interrupted again: exiting now, without draining")
            logging.shutdown()
            os._exit(128 + signum)
        log.info("%s received", signal.Signals(signum).name)
        self.stopping.set()

    async def _initial_load(self) -> int:
        memory.freeze_imports()  # before any model is loaded (p99)
        self.source.start()  # polls while the initial load waits for versions to appear
        self.watchdog.watch_threads(self.source.thread)
        self._initial = asyncio.create_task(
            asyncio.to_thread(self.core.reload_config, self.model_config))
        stopped = asyncio.create_task(self.stopping.wait())
        await asyncio.wait({self._initial, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not self._initial.done():  # the manager's stop ends the wait (see _shutdown)
            log.info("stopping before the initial load is done")
            return 0
        try:
            self._initial.result()
        except ServingError as e:
            print(f"Failed to start server. Error: {e.code.name}: {e.message}", flush=True)
            return EXIT_START_FAILED
        self.service.starting = False
        if self.options.model_config_file:
            self.poller = ConfigFilePoller(self.core, self.options.model_config_file,
                                           self.options.model_config_file_poll_wait_seconds,
                                           applied=self.model_config,
                                           on_error=self.metrics.config_reload_errors.inc)
            self.poller.start()
            self.watchdog.watch_threads(self.poller.thread)
        log.info("all configured models are available")
        return 0

    async def _shutdown(self) -> None:
        log.info("shutting down: draining requests in flight")
        self.engine_health.shutting_down = self.watchdog.stopping = True
        self.stopping.set()
        grace = self.options.grace_period_seconds
        if self.frontend_processes is not None:
            self.frontend_processes.host.push_health()
            await asyncio.gather(self.front_ends.stop(grace), self.frontend_processes.stop(grace))
        else:
            await self.front_ends.stop(grace)
        self.source.stop()
        if self.poller:
            self.poller.stop()
        await asyncio.to_thread(self.manager.stop)
        self.reloads.close()
        await asyncio.to_thread(self.request_logs.close)  # what was sampled is written
        await asyncio.to_thread(self.tracing.shutdown)  # the spans still queued leave
        if self._initial:  # an initial load cut short by a signal: the stop ended its wait
            with contextlib.suppress(ServingError):
                await self._initial
        if self.batcher:
            self.batcher.stop(self.options.grace_period_seconds)
        self.executor.shutdown(wait=False, cancel_futures=True)


def frontend_process_count(flag: int) -> int:
    """``--frontend_processes``: 0 is one per CPU this process may run on."""
    return flag if flag > 0 else usable_cpus()


def _raise_open_file_limit() -> None:
    """Every connection is a descriptor: take the hard limit, not the (often 1024) soft one,
    so that thousands of idle clients cannot starve the others of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(settings: EngineSettings) -> int:
    """Run the engine until SIGTERM/SIGINT; returns the process exit status."""
    log_format.configure(settings.options.log_format)
    _raise_open_file_limit()
    _configure_tensorflow(settings.options)
    server = EngineServer(settings)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        status = runner.run(server.run())
    stuck_runs, stuck_loads = server.runs.in_flight(), server.manager.loads_in_flight()
    if stuck_runs or stuck_loads:  # a thread inside TensorFlow would hold the interpreter's exit
        log.error("exiting with %d model run(s) and %d load(s) that never returned",
                  stuck_runs, stuck_loads)
        logging.shutdown()
        sys.stdout.flush()
        os._exit(status)
    return status
