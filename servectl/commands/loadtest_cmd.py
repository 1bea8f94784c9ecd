"""``servectl loadtest``: Locust against a REST and/or gRPC endpoint, with an SLO verdict.

Locust runs as a child process (importing it monkey-patches this one); this command plans the
run, checks the model and the payload first, then reads the raw per-request samples Locust
wrote and prints exact percentiles per protocol, the load generator's own CPU use, and the
verdict. The exit status is the verdict's: 0 when the SLO was met (for ``--sweep``: when some
level met it), 1 when not (or when Locust failed), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tf_serving_platform.servectl.arguments import duration, positive, version_number
from tf_serving_platform.servectl.errors import UsageError

EXIT_FAILED = 1

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


def add_parser(sub: argparse._SubParsersAction) -> None:
    from tf_serving_platform.loadtest.stages import SHAPES

    p = sub.add_parser("loadtest", help="load-test a model with Locust and judge an SLO",
                       description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rest", metavar="URL", help="REST base URL, e.g. http://127.0.0.1:8501")
    p.add_argument("--grpc", metavar="HOST:PORT", help="gRPC address, e.g. 127.0.0.1:8500")
    p.add_argument("--model", help="model name (with --replay: default the logged ones)")
    p.add_argument("--version", type=version_number(1),
                   help="model version (default: latest)")
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


def load_test(args: argparse.Namespace):
    """The session the arguments ask for (``loadtest.session.LoadTest``)."""
    from tf_serving_platform.loadtest.session import LoadTest
    from tf_serving_platform.loadtest.slo import Slo

    return LoadTest(
        out=args.out, rest=args.rest, grpc=args.grpc, model=args.model, version=args.version,
        label=args.label, signature=args.signature, batch_size=args.batch_size,
        payload_npz=args.payload_npz, protocol=args.protocol, replay=args.replay,
        users=args.users, spawn_rate=args.spawn_rate, duration_s=args.duration,
        processes=args.processes, shape=args.shape, step_users=args.step_users,
        sweep=args.sweep, window_s=args.window,
        slo=Slo(args.slo_p99_ms, args.slo_error_rate, args.slo_min_rps))


def run(args: argparse.Namespace) -> int:
    from tf_serving_platform.loadtest import report as reports
    from tf_serving_platform.loadtest import runner, session

    test = load_test(args)
    try:
        planned = session.plan(test)
        sent = session.precheck(test, planned)
    except session.LoadTestError as e:
        raise UsageError(str(e)) from None
    if sent:
        print(sent, flush=True)
    protocols = "+".join(p for p, on in (("REST", args.rest), ("gRPC", args.grpc)) if on)
    levels = ",".join(str(s.users) for s in planned.stages)
    protocols += " (V2)" if args.protocol == "v2" else ""
    print(f"load test: {args.model or 'the logged models'} over {protocols}, {levels} users, "
          f"{args.duration:g}s per level, {planned.processes} Locust process(es); SLO "
          f"{test.slo.describe()}", flush=True)
    outcome = session.execute(test, planned, report_on_interrupt=True)
    code = outcome.locust_code
    if code not in (0, 1):
        print(f"warning: Locust exited {code}; see {args.out / 'locust.log'}", file=sys.stderr)
    if outcome.report is None:
        print(f"servectl loadtest: Locust sent no request (exit {code}); its log ends:\n"
              f"{runner.log_tail(args.out)}", file=sys.stderr)
        return EXIT_FAILED
    files = session.write_outputs(test, planned, outcome)
    report, verdict = outcome.report, outcome.verdict
    print(reports.table(report))
    print(report.generator.describe())
    if report.generator.warning():
        print(report.generator.warning(), file=sys.stderr)
    print("wrote " + ", ".join(str(f) for f in files))
    if not args.sweep and code in (0, 1) and code != verdict.exit_code:
        print(f"note: Locust's own gate (whole run incl. ramp-up, ms buckets) exited {code}")
    print(verdict.line())
    return verdict.exit_code
