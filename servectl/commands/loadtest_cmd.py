"""``servectl loadtest``: Locust against a REST and/or gRPC endpoint, with an SLO verdict.

Locust runs as a child process (importing it monkey-patches this one); this command plans the
run, checks the model and the payload first, then reads the raw per-request samples Locust
wrote and prints exact percentiles per protocol, the load generator's own CPU use, and the
verdict. The exit status is the verdict's: 0 when the SLO was met (for ``--sweep``: when some
level met it), 1 when not (or when Locust failed), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from servectl.errors import UsageError

EXIT_FAILED = 1
DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

EXAMPLE = """examples:
  servectl loadtest --rest http://127.0.0.1:8501 --model half_plus_two --users 8 \\
      --duration 30s --slo-p99-ms 20 --slo-error-rate 0.001
  servectl loadtest --grpc 127.0.0.1:8500 --model digits_cnn --label canary \\
      --payload-npz heldout.npz --batch-size 8 --shape spike --users 32
  servectl loadtest --rest http://127.0.0.1:8501 --grpc 127.0.0.1:8500 --model wide_deep \\
      --sweep 1,2,4,8,16 --duration 20s --slo-p99-ms 50 --out sweep-results

OUT gets Locust's CSV (locust_stats.csv, ...) and HTML (locust.html) reports, timeline.png
(latency percentiles and throughput over time), results.json, and for --sweep curve.png and
curve.csv. Percentiles come from raw per-request samples (microseconds), not from Locust's
millisecond buckets. Load generator: one Locust process per two cores by default (the server
under test usually shares this machine); the run reports how busy each process was and warns
when the generator, not the server, was the bottleneck."""


def duration(text: str) -> float:
    """``10s``, ``1m30s``, ``500ms``, ``2m``, ``45`` (seconds) -> seconds."""
    parts = DURATION.findall(text)
    if not parts or "".join(n + (u or "") for n, u in parts) != text.strip():
        raise argparse.ArgumentTypeError(f"expected a duration like 10s, 2m or 1m30s; got {text!r}")
    seconds = sum(float(n) * UNITS[u or None] for n, u in parts)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration; got {text!r}")
    return seconds


def positive(kind: type):
    """An argparse type for positive ints or floats, with a one-line error."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}")
        return value
    return parse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from loadtest.stages import SHAPES

    p = sub.add_parser("loadtest", help="load-test a model with Locust and judge an SLO",
                       description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rest", metavar="URL", help="REST base URL, e.g. http://127.0.0.1:8501")
    p.add_argument("--grpc", metavar="HOST:PORT", help="gRPC address, e.g. 127.0.0.1:8500")
    p.add_argument("--model", help="model name (with --replay: default the logged ones)")
    p.add_argument("--version", type=positive(int), help="model version (default: latest)")
    p.add_argument("--label", help="version label, e.g. stable or canary")
    p.add_argument("--signature", default="serving_default", help="signature (%(default)s)")
    p.add_argument("--batch-size", type=positive(int), default=1, help="examples per request")
    p.add_argument("--payload-npz", type=Path,
                   help=".npz of real rows, one array per input name (default: synthetic)")
    p.add_argument("--protocol", choices=("tfserving", "v2"), default="tfserving",
                   help="TensorFlow Serving's API or the Open Inference Protocol (KServe V2)")
    p.add_argument("--replay", type=Path, metavar="LOGS",
                   help="send a request log's calls (logging_config's files: a file, folder or "
                        "filename_prefix) in logged order instead of synthetic bodies")
    p.add_argument("--users", type=positive(int), default=4, help="concurrent users (%(default)s)")
    p.add_argument("--spawn-rate", type=positive(float), help="users started per second "
                   "(default: all at once)")
    p.add_argument("--duration", type=duration, default=10.0,
                   help="measured time per level, e.g. 10s, 2m (10s)")
    p.add_argument("--processes", type=int, help="Locust processes; -1: one per core "
                   "(default: one per two cores)")
    p.add_argument("--shape", choices=SHAPES, default="constant", help="load shape (%(default)s)")
    p.add_argument("--step-users", type=positive(int),
                   help="step of --shape steps, base load of spike (users/4)")
    p.add_argument("--sweep", metavar="USERS,...", help="measure each user count in turn and "
                   "find the knee, e.g. 1,2,4,8")
    p.add_argument("--window", type=positive(float), help="stability window in seconds "
                   "(a fifth of --duration, within 0.5-5)")
    p.add_argument("--out", type=Path, default=Path("loadtest-results"),
                   help="output directory (%(default)s)")
    p.add_argument("--slo-p99-ms", type=positive(float), help="SLO: p99 latency limit in ms")
    p.add_argument("--slo-error-rate", type=float, default=0.01,
                   help="SLO: highest failed share of requests (%(default)s)")
    p.add_argument("--slo-min-rps", type=positive(float), help="SLO: lowest throughput")
    p.set_defaults(run=run)


def plan_run(args: argparse.Namespace):
    """The Locust run the arguments ask for, checked before anything starts."""
    from loadtest import runner, stages, sweep
    from loadtest.signature import Target
    from loadtest.slo import Slo

    if not args.rest and not args.grpc:
        raise UsageError("give --rest URL and/or --grpc HOST:PORT")
    if not args.model and not args.replay:
        raise UsageError("give --model NAME (or --replay LOGS)")
    if args.replay and args.payload_npz:
        raise UsageError("give --replay or --payload-npz, not both")
    if args.replay and args.protocol == "v2":
        raise UsageError("--replay sends TensorFlow Serving's calls as logged; drop "
                         "--protocol v2")
    if args.version is not None and args.label:
        raise UsageError("give --version or --label, not both")
    if not 0 <= args.slo_error_rate <= 1:
        raise UsageError(f"--slo-error-rate is a fraction in [0, 1]; got {args.slo_error_rate}")
    levels: tuple[int, ...] = ()
    shape = args.shape
    if args.sweep:
        if shape != "constant":
            raise UsageError("--sweep plays its own levels; drop --shape")
        try:
            levels = sweep.parse_levels(args.sweep)
        except ValueError as e:
            raise UsageError(f"--sweep: {e}") from None
        shape = "steps"
    processes = args.processes or runner.default_processes()
    if processes == -1:
        processes = os.cpu_count() or 1
    if processes < 1:
        raise UsageError(f"--processes is a positive count or -1; got {args.processes}")
    users = max(levels) if levels else args.users
    spawn_rate = args.spawn_rate or float(users)
    try:
        planned = stages.plan(shape, users, spawn_rate, args.duration, args.step_users, levels)
    except ValueError as e:
        raise UsageError(str(e)) from None
    shape_args = ["--shape", shape, "--step-duration", f"{args.duration:g}"]
    shape_args += ["--step-users", str(args.step_users)] if args.step_users else []
    shape_args += ["--levels", ",".join(map(str, levels))] if levels else []
    payload_args = ["--batch-size", str(args.batch_size), "--api-protocol", args.protocol]
    payload_args += ["--payload-npz", str(args.payload_npz.resolve())] if args.payload_npz else []
    payload_args += ["--replay", str(args.replay.resolve())] if args.replay else []
    slo = Slo(args.slo_p99_ms, args.slo_error_rate, args.slo_min_rps)
    return runner.LocustRun(
        Target(args.model or "", args.version, args.label, args.signature), args.rest, args.grpc,
        planned, shape_args, users, spawn_rate, processes, args.out,
        None if args.sweep else slo, payload_args), slo


def precheck(config, args: argparse.Namespace) -> None:
    """Reads the signature and encodes one payload pool (or reads the replayed log) now, so
    mistakes fail in a line."""
    protocols = tuple(p for p, on in (("rest", config.rest), ("grpc", config.grpc)) if on)
    if args.replay:
        _precheck_replay(args, protocols)
    else:
        _precheck_payload(config, args, protocols)
    try:
        config.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create --out {config.out}: {e.strerror}") from None


def _precheck_replay(args: argparse.Namespace, protocols: tuple[str, ...]) -> None:
    from loadtest import replay

    try:
        logged = replay.load(args.replay, args.model, args.version, args.label)
    except replay.ReplayError as e:
        raise UsageError(str(e)) from None
    if protocols == ("rest",) and all(r.rest_path is None for r in logged):
        raise UsageError(f"{args.replay}: every logged call is MultiInference, which REST "
                         "cannot send; use --grpc")
    apis = sorted({r.api for r in logged})
    print(f"replaying {len(logged)} logged calls ({', '.join(apis)}) from {args.replay}",
          flush=True)


def _precheck_payload(config, args: argparse.Namespace, protocols: tuple[str, ...]) -> None:
    from loadtest import payloads, signature

    try:
        if args.protocol == "v2":
            specs = signature.fetch_v2(config.rest, config.grpc, config.target)
        else:
            specs = (signature.fetch_rest(config.rest, config.target) if config.rest
                     else signature.fetch_grpc(config.grpc, config.target))
        payloads.build(specs, config.target, protocols, args.batch_size, args.payload_npz,
                       api=args.protocol)
    except (signature.SignatureError, payloads.PayloadError) as e:
        raise UsageError(str(e)) from None


def write_outputs(config, args, slo, report, samples, verdict, locust_code: int) -> list[Path]:
    """Plots, the sweep curve and results.json; returns every file worth naming."""
    from loadtest import plots, sweep
    from loadtest.report import to_dict

    out = config.out
    files = [out / "locust.html", out / "locust_stats.csv",
             plots.timeline(samples, report, out / "timeline.png")]
    knee = None
    if args.sweep:
        knee = sweep.knee(report.levels)
        files += [plots.curve(report.levels, knee, slo, out / "curve.png"),
                  sweep.write_csv(report.levels, out / "curve.csv")]
    results = {**to_dict(report), "verdict": {"passed": verdict.passed,
                                              "reasons": list(verdict.reasons),
                                              "exit_code": verdict.exit_code},
               "knee_users": knee.users if knee else None, "locust_exit_code": locust_code,
               "config": {"model": args.model, "version": args.version, "label": args.label,
                          "signature": args.signature, "rest": args.rest, "grpc": args.grpc,
                          "users": config.users, "processes": config.processes,
                          "duration_s": args.duration,
                          "shape": "steps" if args.sweep else args.shape,
                          "slo": slo.__dict__}}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return [*files, out / "results.json"]


def run(args: argparse.Namespace) -> int:
    from loadtest import report as reports
    from loadtest import runner, samples, stages, sweep

    config, slo = plan_run(args)
    precheck(config, args)
    protocols = "+".join(p for p, on in (("REST", args.rest), ("gRPC", args.grpc)) if on)
    levels = ",".join(str(s.users) for s in config.stages)
    protocols += " (V2)" if args.protocol == "v2" else ""
    print(f"load test: {args.model or 'the logged models'} over {protocols}, {levels} users, "
          f"{args.duration:g}s per level, {config.processes} Locust process(es); SLO "
          f"{slo.describe()}", flush=True)
    code = runner.run(config, report_on_interrupt=True)
    if code not in (0, 1):
        print(f"warning: Locust exited {code}; see {config.out / 'locust.log'}", file=sys.stderr)
    recorded = samples.load(config.samples_dir)
    if not len(recorded.start):
        print(f"servectl loadtest: Locust sent no request (exit {code}); its log ends:\n"
              f"{runner.log_tail(config.out)}", file=sys.stderr)
        return EXIT_FAILED
    report = reports.analyze(recorded, stages.read_levels(config.samples_dir), slo, args.window)
    verdict = sweep.verdict(report) if args.sweep else report.verdict
    files = write_outputs(config, args, slo, report, recorded, verdict, code)
    print(reports.table(report))
    print(report.generator.describe())
    if report.generator.warning():
        print(report.generator.warning(), file=sys.stderr)
    print("wrote " + ", ".join(str(f) for f in files))
    if config.slo is not None and code in (0, 1) and code != verdict.exit_code:
        print(f"note: Locust's own gate (whole run incl. ramp-up, ms buckets) exited {code}")
    print(verdict.line())
    return verdict.exit_code
