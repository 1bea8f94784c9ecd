"""Locust load test of a TensorFlow Serving endpoint, over REST and/or gRPC.

Run it through ``servectl loadtest`` (which adds the report, plots and verdict), or directly::

    locust -f loadtest/locustfile.py --headless -u 8 -r 8 --host http://127.0.0.1:8501 \\
        --grpc-target 127.0.0.1:8500 --model half_plus_two --step-duration 30 \\
        --slo-p99-ms 50 --slo-error-rate 0.01

``RestUser`` runs when ``--host`` is given and ``GrpcUser`` when ``--grpc-target`` is; name one
class on the command line to run only it. Each user is one closed-loop client (no think
time). Request bodies come from the model's signature metadata (or ``--payload-npz``) and are
encoded before the test starts; ``--replay LOGS`` sends a request log's calls instead, in logged
order (``loadtest.replay``). ``StagedShape`` plays ``--shape constant|steps|spike``.
Every process keeps raw samples in ``--samples-dir`` (see ``loadtest.samples``), and a
``quitting`` listener sets the exit code from ``--slo-*`` (see ``loadtest.slo``).
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import grpc.experimental.gevent as grpc_gevent
from locust import FastHttpUser, LoadTestShape, User, constant, events, task
from locust.runners import MasterRunner, WorkerRunner

from tf_serving_platform.loadtest import payloads, replay, signature, stages
from tf_serving_platform.loadtest.options import LocustfileOptions, add_arguments
from tf_serving_platform.loadtest.samples import Recorder
from tf_serving_platform.loadtest.slo import Slo, judge
from tf_serving_platform.serving import logger
from tf_serving_platform.serving.client import ModelRef
from tf_serving_platform.serving.errors import ServingError

grpc_gevent.init_gevent()  # gRPC's I/O must yield to gevent, or one call blocks every user

REQUEST_TIMEOUT_S = 30.0
DEFAULT_SECONDS = 60.0
logger = logger(__name__)


@dataclass
class _Run:
    """What this process prepared in ``init``: the target and the encoded request bodies."""

    target: ModelRef | None = None
    bodies: dict[str, list[bytes]] = field(default_factory=dict)
    replayed: dict[str, itertools.cycle] = field(default_factory=dict)
    """With ``--replay``: per protocol, the logged requests in order, shared by every user."""

    def cycle(self, protocol: str) -> itertools.cycle:
        """The bodies of ``protocol`` in an endless loop, from a random place per user."""
        pool = self.bodies[protocol]
        offset = random.randrange(len(pool))
        return itertools.cycle(pool[offset:] + pool[:offset])


RUN = _Run()


@events.init_command_line_parser.add_listener
def _add_arguments(parser) -> None:
    """Our options (``loadtest.options``), settable on the command line, in the web UI and in
    locust.conf."""
    add_arguments(parser)


def stage_plan(options) -> list[stages.Stage]:
    """The stages the command line asks for (``loadtest.stages.plan``)."""
    levels = tuple(int(n) for n in options.levels.split(",") if n.strip())
    seconds = options.step_duration or options.run_time or DEFAULT_SECONDS
    return stages.plan(options.shape, options.num_users or 1, options.spawn_rate or 1.0,
                       seconds, options.step_users, levels)


def _prepare(environment, options) -> None:
    """Selects the users that have a target, checks the shape, and encodes the bodies."""
    configured = {"rest": bool(environment.host), "grpc": bool(options.grpc_target)}
    environment.user_classes[:] = [u for u in environment.user_classes
                                   if configured[u.protocol]]
    if not environment.user_classes:
        raise signature.SignatureError("no target: pass --host URL (REST) and/or "
                                       "--grpc-target HOST:PORT (gRPC)")
    stage_plan(options)
    RUN.target = LocustfileOptions.from_parsed(options).target()
    if RUN.target is None and not options.replay:
        raise signature.SignatureError("pass --model NAME")
    if isinstance(environment.runner, MasterRunner):
        return  # the master sends no requests
    protocols = tuple(u.protocol for u in environment.user_classes)
    if options.replay:
        _prepare_replay(options, protocols)
        return
    if options.api_protocol == "v2":
        specs = signature.fetch_v2(environment.host, options.grpc_target, RUN.target)
    else:
        specs = (signature.fetch_rest(environment.host, RUN.target) if environment.host
                 else signature.fetch_grpc(options.grpc_target, RUN.target))
    npz = Path(options.payload_npz) if options.payload_npz else None
    RUN.bodies = payloads.build(specs, RUN.target, protocols, options.batch_size, npz,
                                api=options.api_protocol).bodies


def _prepare_replay(options, protocols: tuple[str, ...]) -> None:
    logged = replay.load(options.replay, options.model or None, options.model_version,
                         options.model_label or None)
    for protocol in protocols:
        sendable = [r for r in logged if protocol == "grpc" or r.rest_path is not None]
        if not sendable:
            raise replay.ReplayError(f"{options.replay}: no logged call that REST can send "
                                     "(MultiInference is gRPC only)")
        RUN.replayed[protocol] = itertools.cycle(sendable)


@events.init.add_listener
def _on_init(environment, runner, **_) -> None:
    options = environment.parsed_options
    if options is None:
        return  # used as a library: nothing to configure
    role = {MasterRunner: "master", WorkerRunner: "worker"}.get(type(runner), "local")
    recorder = Recorder(Path(options.samples_dir), role)
    environment.events.request.add_listener(recorder.on_request)
    environment.events.test_start.add_listener(recorder.on_test_start)
    environment.events.test_stop.add_listener(recorder.on_test_stop)
    try:
        _prepare(environment, options)
    except (signature.SignatureError, payloads.PayloadError, replay.ReplayError,
            ServingError, ValueError) as e:
        logger.error("load test not started: %s", e)
        raise SystemExit(2) from None


@events.quitting.add_listener
def _slo_gate(environment, **_) -> None:
    """Sets the exit code from the SLO, on Locust's own (whole-run, whole-ms) statistics."""
    options = environment.parsed_options
    if options is None or isinstance(environment.runner, WorkerRunner):
        return
    slo = Slo(options.slo_p99_ms, options.slo_error_rate, options.slo_min_rps)
    if slo == Slo():
        return
    total = environment.stats.total
    p99 = total.get_response_time_percentile(0.99) if total.num_requests else float("nan")
    verdict = judge(slo, total.num_requests, p99, total.fail_ratio,
                    total.total_rps - total.total_fail_per_sec)
    environment.process_exit_code = verdict.exit_code
    logger.info("Locust statistics (whole run, ms buckets): %s", verdict.line())


class RestUser(FastHttpUser):
    """One REST client: POST ``:predict`` back to back on one keep-alive connection."""

    protocol = "rest"
    wait_time = constant(0)
    concurrency = 1

    def on_start(self) -> None:
        self.bodies = None if RUN.replayed else RUN.cycle(self.protocol)
        if self.bodies is not None:
            v2 = self.environment.parsed_options.api_protocol == "v2"
            self.path = RUN.target.v2_path("/infer") if v2 else RUN.target.rest_path(":predict")

    @task
    def predict(self) -> None:
        if RUN.replayed:
            logged = next(RUN.replayed[self.protocol])
            self.client.post(logged.rest_path, data=logged.rest_body, name=logged.rest_path,
                             headers={"Content-Type": "application/json"})
            return
        self.client.post(self.path, data=next(self.bodies),
                         headers={"Content-Type": "application/json"})


class GrpcUser(User):
    """One gRPC client: raw-bytes ``Predict`` calls on its own connection.

    The body is a pre-serialized ``PredictRequest`` and the response is not parsed, so the
    generator spends its CPU on the calls, not on protobuf. Each call is reported through
    ``events.request`` like an HTTP request.
    """

    protocol = "grpc"
    wait_time = constant(0)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.channel = grpc.insecure_channel(options.grpc_target,
                                             options=[("grpc.use_local_subchannel_pool", 1)])
        v2 = options.api_protocol == "v2"
        self.call = self.channel.unary_unary(signature.V2_INFER_METHOD if v2
                                             else signature.PREDICT_METHOD)
        self.calls: dict[str, grpc.UnaryUnaryMultiCallable] = {}
        self.bodies = None if RUN.replayed else RUN.cycle(self.protocol)
        if self.bodies is not None:
            self.name = f"{'ModelInfer' if v2 else 'Predict'} {RUN.target.model}"

    def on_stop(self) -> None:
        self.channel.close()

    def _next(self) -> tuple[grpc.UnaryUnaryMultiCallable, str, bytes]:
        """The call, its name in the statistics and its body: the next logged one when
        replaying."""
        if self.bodies is not None:
            return self.call, self.name, next(self.bodies)
        logged = next(RUN.replayed[self.protocol])
        call = self.calls.get(logged.grpc_method)
        if call is None:
            call = self.calls[logged.grpc_method] = self.channel.unary_unary(logged.grpc_method)
        return call, f"{logged.api} {logged.model}", logged.grpc_body

    @task
    def predict(self) -> None:
        call, name, body = self._next()
        start_time, started = time.time(), time.perf_counter()
        response, exception = b"", None
        try:
            response = call(body, timeout=REQUEST_TIMEOUT_S)
        except grpc.RpcError as e:
            exception = e
        self.environment.events.request.fire(
            request_type="gRPC", name=name, start_time=start_time, context={},
            response_time=(time.perf_counter() - started) * 1000,
            response_length=len(response), exception=exception)


class StagedShape(LoadTestShape):
    """``--shape constant|steps|spike`` (``loadtest.stages``), also driving ``servectl`` sweeps."""

    use_common_options = True

    def __init__(self) -> None:
        super().__init__()
        self.clock: stages.StageClock | None = None

    def reset_time(self) -> None:
        super().reset_time()
        self.clock = None  # a new test plays the stages from the start

    def tick(self) -> tuple[int, float] | None:
        if self.clock is None:
            options = self.runner.environment.parsed_options
            self.clock = stages.StageClock(stage_plan(options),
                                           Path(options.samples_dir) / stages.SCHEDULE_FILE)
        return self.clock.tick(self.get_current_user_count())
