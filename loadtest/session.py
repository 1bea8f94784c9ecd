"""A load test from options to verdict: plan, precheck, run, write the outputs.

``servectl loadtest`` runs one session; ``servectl tune`` runs one per batching setting, each
against a fresh engine. Both fill in a ``LoadTest`` and call the same four steps:

    >>> test = LoadTest(out=Path("results"), rest="http://127.0.0.1:8501", model="m")
    >>> run = plan(test)          # checks the options; raises LoadTestError
    >>> precheck(test, run)       # reads the signature, encodes one payload pool
    >>> outcome = execute(test, run)
    >>> files = write_outputs(test, run, outcome)

Locust runs as a child process (``loadtest.runner``); the outcome is read from the raw
per-request samples it wrote, not from Locust's millisecond buckets.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from tf_serving_platform.loadtest import (
    payloads,
    replay,
    report,
    runner,
    samples,
    signature,
    stages,
    sweep,
)
from tf_serving_platform.loadtest.options import LocustfileOptions
from tf_serving_platform.loadtest.slo import Slo, Verdict

PROTOCOLS = ("tfserving", "v2")


class LoadTestError(Exception):
    """The options ask for something that cannot run (one line, naming the option)."""


@dataclass(frozen=True)
class LoadTest:
    """What to load-test and how; each field is the ``servectl loadtest`` option of its name.

    Attributes:
        out: output directory.
        rest: REST base URL, or None.
        grpc: gRPC ``HOST:PORT``, or None.
        model: model name; None with ``replay`` sends the logged ones.
        version: model version, or None for the latest (or ``label``).
        label: version label, or None.
        signature: signature key.
        batch_size: examples per request.
        payload_npz: ``.npz`` of real rows, or None for synthetic ones.
        protocol: ``tfserving`` (TensorFlow Serving's API) or ``v2`` (Open Inference Protocol).
        replay: a request log to replay instead of synthetic bodies, or None.
        users: concurrent users (the peak of a shape).
        spawn_rate: users started per second; None starts them all at once.
        duration_s: measured seconds per level.
        processes: Locust processes; None for ``runner.default_processes``, -1 for one per core.
        shape: ``constant``, ``steps`` or ``spike``.
        step_users: the step of ``steps``, the base load of ``spike``.
        sweep: user counts to measure in turn (``"1,2,4"``), or None.
        window_s: stability window; None for a fifth of ``duration_s`` within 0.5-5 s.
        slo: the limits the verdict judges.
    """

    out: Path
    rest: str | None = None
    grpc: str | None = None
    model: str | None = None
    version: int | None = None
    label: str | None = None
    signature: str = "serving_default"
    batch_size: int = 1
    payload_npz: Path | None = None
    protocol: str = "tfserving"
    replay: Path | None = None
    users: int = 4
    spawn_rate: float | None = None
    duration_s: float = 10.0
    processes: int | None = None
    shape: str = "constant"
    step_users: int | None = None
    sweep: str | None = None
    window_s: float | None = None
    slo: Slo = field(default_factory=Slo)

    @property
    def protocols(self) -> tuple[str, ...]:
        """The wires sending load: ``rest`` and/or ``grpc``."""
        return tuple(p for p, on in (("rest", self.rest), ("grpc", self.grpc)) if on)


@dataclass(frozen=True)
class Outcome:
    """What a run measured; ``report`` is None when Locust sent no request."""

    locust_code: int
    recorded: samples.Samples
    report: report.Report | None
    verdict: Verdict | None
    knee: report.LevelReport | None = None


def _check(test: LoadTest) -> None:
    if not test.rest and not test.grpc:
        raise LoadTestError("give --rest URL and/or --grpc HOST:PORT")
    if not test.model and not test.replay:
        raise LoadTestError("give --model NAME (or --replay LOGS)")
    if test.replay and test.payload_npz:
        raise LoadTestError("give --replay or --payload-npz, not both")
    if test.replay and test.protocol == "v2":
        raise LoadTestError("--replay sends TensorFlow Serving's calls as logged; drop "
                            "--protocol v2")
    if test.protocol not in PROTOCOLS:
        raise LoadTestError(f"--protocol is one of {', '.join(PROTOCOLS)}; got {test.protocol}")
    if test.version is not None and test.label:
        raise LoadTestError("give --version or --label, not both")
    error_rate = test.slo.error_rate
    if error_rate is not None and not 0 <= error_rate <= 1:
        raise LoadTestError(f"--slo-error-rate is a fraction in [0, 1]; got {error_rate}")


def _levels(test: LoadTest) -> tuple[int, ...]:
    if not test.sweep:
        return ()
    if test.shape != "constant":
        raise LoadTestError("--sweep plays its own levels; drop --shape")
    try:
        return sweep.parse_levels(test.sweep)
    except ValueError as e:
        raise LoadTestError(f"--sweep: {e}") from None


def _processes(test: LoadTest) -> int:
    processes = test.processes or runner.default_processes()
    if processes == -1:
        processes = os.cpu_count() or 1
    if processes < 1:
        raise LoadTestError(f"--processes is a positive count or -1; got {test.processes}")
    return processes


def plan(test: LoadTest) -> runner.LocustRun:
    """The Locust run the options ask for, checked before anything starts.

    Raises:
        LoadTestError: the options contradict each other or are out of range.
    """
    _check(test)
    levels = _levels(test)
    shape = "steps" if levels else test.shape
    users = max(levels) if levels else test.users
    spawn_rate = test.spawn_rate or float(users)
    try:
        planned = stages.plan(shape, users, spawn_rate, test.duration_s, test.step_users,
                              levels)
    except ValueError as e:
        raise LoadTestError(str(e)) from None
    gate = Slo() if test.sweep else test.slo  # a sweep judges each level, not the whole run
    options = LocustfileOptions(
        model=test.model or "", model_version=test.version, model_label=test.label or "",
        signature=test.signature, grpc_target=test.grpc or "", batch_size=test.batch_size,
        payload_npz=str(test.payload_npz.resolve()) if test.payload_npz else "",
        replay=str(test.replay.resolve()) if test.replay else "", api_protocol=test.protocol,
        shape=shape, step_users=test.step_users, step_duration=test.duration_s,
        levels=",".join(map(str, levels)), samples_dir=str(test.out / "samples"),
        slo_p99_ms=gate.p99_ms, slo_error_rate=gate.error_rate, slo_min_rps=gate.min_rps)
    return runner.LocustRun(options, test.rest, planned, users, spawn_rate, _processes(test),
                            test.out)


def precheck(test: LoadTest, run: runner.LocustRun) -> str | None:
    """Reads the signature and encodes one payload pool (or reads the replayed log) now, so
    mistakes fail in a line; creates the output directory. Returns what a replay will send.

    Raises:
        LoadTestError: the model, signature, payload or log cannot be used.
    """
    sent = None
    if test.replay:
        sent = _precheck_replay(test)
    else:
        _precheck_payload(test, run)
    try:
        test.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LoadTestError(f"cannot create --out {test.out}: {e.strerror}") from None
    return sent


def _precheck_replay(test: LoadTest) -> str:
    try:
        logged = replay.load(test.replay, test.model, test.version, test.label)
    except replay.ReplayError as e:
        raise LoadTestError(str(e)) from None
    if test.protocols == ("rest",) and all(r.rest_path is None for r in logged):
        raise LoadTestError(f"{test.replay}: every logged call is MultiInference, which REST "
                            "cannot send; use --grpc")
    apis = sorted({r.api for r in logged})
    return f"replaying {len(logged)} logged calls ({', '.join(apis)}) from {test.replay}"


def _precheck_payload(test: LoadTest, run: runner.LocustRun) -> None:
    target = run.options.target()
    try:
        if test.protocol == "v2":
            specs = signature.fetch_v2(test.rest, test.grpc, target)
        else:
            specs = (signature.fetch_rest(test.rest, target) if test.rest
                     else signature.fetch_grpc(test.grpc, target))
        payloads.build(specs, target, test.protocols, test.batch_size, test.payload_npz,
                       api=test.protocol)
    except (signature.SignatureError, payloads.PayloadError) as e:
        raise LoadTestError(str(e)) from None


def execute(test: LoadTest, run: runner.LocustRun,
            report_on_interrupt: bool = False) -> Outcome:
    """Runs Locust (``runner.run``) and analyzes the samples it wrote."""
    code = runner.run(run, report_on_interrupt=report_on_interrupt)
    recorded = samples.load(run.samples_dir)
    if not len(recorded.start):
        return Outcome(code, recorded, None, None)
    analyzed = report.analyze(recorded, stages.read_levels(run.samples_dir), test.slo,
                              test.window_s)
    if test.sweep:
        return Outcome(code, recorded, analyzed, sweep.verdict(analyzed),
                       sweep.knee(analyzed.levels))
    return Outcome(code, recorded, analyzed, analyzed.verdict)


def write_outputs(test: LoadTest, run: runner.LocustRun, outcome: Outcome) -> list[Path]:
    """Plots, the sweep curve and results.json; returns every file worth naming."""
    from tf_serving_platform.loadtest import plots

    analyzed, verdict, out = outcome.report, outcome.verdict, test.out
    files = [out / "locust.html", out / "locust_stats.csv",
             plots.timeline(outcome.recorded, analyzed, out / "timeline.png")]
    if test.sweep:
        files += [plots.curve(analyzed.levels, outcome.knee, test.slo, out / "curve.png"),
                  sweep.write_csv(analyzed.levels, out / "curve.csv")]
    results = {**report.to_dict(analyzed),
               "verdict": {"passed": verdict.passed, "reasons": list(verdict.reasons),
                           "exit_code": verdict.exit_code},
               "knee_users": outcome.knee.users if outcome.knee else None,
               "locust_exit_code": outcome.locust_code,
               "config": {"model": test.model, "version": test.version, "label": test.label,
                          "signature": test.signature, "rest": test.rest, "grpc": test.grpc,
                          "users": run.users, "processes": run.processes,
                          "duration_s": test.duration_s, "shape": run.options.shape,
                          "slo": test.slo.__dict__}}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return [*files, out / "results.json"]
