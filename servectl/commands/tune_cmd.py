"""``servectl tune``: find the batching setting with the highest throughput that meets an SLO.

What Triton's model analyzer does for Triton, for TensorFlow Serving's batching: for each
setting of a grid over ``max_batch_size``, ``batch_timeout_micros``, ``num_batch_threads`` and
``max_enqueued_batches`` it starts a fresh engine (``servectl serve --enable_batching
--batching_parameters_file=...``), load-tests it with the project's load test (the same Locust
run as ``servectl loadtest``), and stops it. The setting with the highest throughput among those
that met the SLO is written as a text-format ``tensorflow.serving.BatchingParameters`` file that
a real TensorFlow Serving reads unchanged. Exit status: 0 when a setting met the SLO, 1 when
none did (no file is written), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import sys
import textwrap
import time
from pathlib import Path

from tf_serving_platform.servectl.arguments import duration, int_list, positive
from tf_serving_platform.servectl.errors import UsageError

EXIT_NONE_MET = 1
SECONDS_PER_START = 8.0
"""Engine start-up plus Locust start-up per setting, for the time estimate only."""

EXAMPLE = """examples:
  servectl tune --model half_plus_two --model-base-path /models/half_plus_two \\
      --slo-p99-ms 20 --users 16 --duration 15s --out tune-results
  servectl tune --model wide_deep --model-config-file serving/config/models.config \\
      --protocol grpc --max-batch-sizes 8,32 --timeouts-us 0,1000 --threads 1,2 \\
      --queue 2,8 --budget 6 --slo-p99-ms 50 --output serving/config/batching.config

Default grid (TensorFlow Serving's batching/README.md recipe): max_batch_size 8,16,32;
batch_timeout_micros 0,1000,2000,5000,10000; num_batch_threads = this machine's cores;
max_enqueued_batches = num_batch_threads. --budget N tries N of the settings, chosen with a
seeded random draw (--seed), so the same command tries the same settings.

OUT gets tune.csv (every setting: req/s, p50, p99, errors, meets SLO, chosen), tune.png
(throughput vs p99, one point per setting, the SLO line, the chosen one starred), and per
setting runs/NN-*/ with the batching file the engine read, its log and the load test's reports.
The chosen setting goes to --output (OUT/batching.config by default), for
`tensorflow_model_server --enable_batching --batching_parameters_file=FILE`."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="find the batching setting with the highest throughput "
                       "that meets a p99 SLO", description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model name")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--model-base-path", type=Path, metavar="DIR",
                       help="the model's base path (numbered version directories)")
    where.add_argument("--model-config-file", type=Path, metavar="FILE",
                       help="a models.config that serves --model (and maybe others)")
    p.add_argument("--signature", default="serving_default", help="signature (%(default)s)")
    p.add_argument("--batch-size", type=positive(int), default=1,
                   help="rows per request (%(default)s)")
    p.add_argument("--protocol", choices=("rest", "grpc", "both"), default="rest",
                   help="what the load test sends (%(default)s)")
    p.add_argument("--users", type=positive(int), default=16,
                   help="concurrent users per setting (%(default)s)")
    p.add_argument("--duration", type=duration, default=10.0,
                   help="measured time per setting, e.g. 10s, 1m (10s)")
    p.add_argument("--processes", type=int, help="Locust processes, as for servectl loadtest")
    p.add_argument("--max-batch-sizes", type=int_list(1), metavar="N,...",
                   help="max_batch_size values (8,16,32)")
    p.add_argument("--timeouts-us", type=int_list(0), metavar="US,...",
                   help="batch_timeout_micros values (0,1000,2000,5000,10000)")
    p.add_argument("--threads", type=int_list(1), metavar="N,...",
                   help="num_batch_threads values (this machine's cores)")
    p.add_argument("--queue", type=int_list(1), metavar="N,...",
                   help="max_enqueued_batches values (each setting's num_batch_threads)")
    p.add_argument("--budget", type=positive(int), metavar="N",
                   help="try at most N settings of the grid (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --budget draw (0)")
    p.add_argument("--slo-p99-ms", type=positive(float), required=True,
                   help="SLO: p99 latency limit in ms")
    p.add_argument("--slo-error-rate", type=float, default=0.01,
                   help="SLO: highest failed share of requests (%(default)s)")
    p.add_argument("--out", type=Path, default=Path("tune-results"),
                   help="directory for the table, plot and per-setting runs (%(default)s)")
    p.add_argument("--output", type=Path, metavar="FILE",
                   help="where the chosen batching.config goes (OUT/batching.config)")
    p.add_argument("--engine-timeout", type=positive(float), default=120.0,
                   help="seconds to wait for each engine to be ready (%(default)s)")
    p.set_defaults(run=run)


def cores() -> int:
    """The cores this process may run on (the engine's default num_batch_threads)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _model_flags(args: argparse.Namespace) -> list[str]:
    """The engine flags that serve the model, checked now so mistakes fail in a line."""
    from tf_serving_platform.serving.engine import model_config
    from tf_serving_platform.serving.errors import ServingError

    if args.model_base_path is not None:
        if not args.model_base_path.is_dir():
            raise UsageError(f"--model-base-path {args.model_base_path} is not a directory")
        return [f"--model_name={args.model}",
                f"--model_base_path={args.model_base_path.resolve()}"]
    path = args.model_config_file
    try:
        config = model_config.read_file(path)
        model_config.validate(config)
    except (model_config.ConfigParseError, ServingError) as e:
        raise UsageError(f"--model-config-file {path}: {e}") from None
    names = [c.name for c in config.model_config_list.config]
    if args.model not in names:
        raise UsageError(f"--model-config-file {path} does not serve {args.model!r}; it serves "
                         f"{', '.join(names) or 'no model'}")
    return [f"--model_config_file={path.resolve()}"]


def _grid(args: argparse.Namespace):
    from tf_serving_platform.loadtest import tune

    grid = tune.build_grid(args.max_batch_sizes or tune.DEFAULT_MAX_BATCH_SIZES,
                           args.timeouts_us or tune.DEFAULT_TIMEOUTS_US,
                           args.threads or (), args.queue or (), cores())
    small = [s.max_batch_size for s in grid if s.max_batch_size < args.batch_size]
    if small:
        raise UsageError(f"--max-batch-sizes {small[0]} is below --batch-size {args.batch_size}: "
                         "every request would be refused")
    return grid, tune.sample(grid, args.budget, args.seed)


def _check_paths(args: argparse.Namespace) -> Path:
    """Creates OUT; returns the output file, whose directory must exist."""
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create --out {args.out}: {e.strerror}") from None
    output = args.output or args.out / "batching.config"
    if output.is_dir():
        raise UsageError(f"--output {output} is a directory")
    if not output.parent.is_dir():
        raise UsageError(f"--output {output}: directory {output.parent} does not exist")
    return output


def _load_test(args: argparse.Namespace, engine, out: Path):
    """The load test of one setting: ``servectl loadtest``'s defaults, this command's load."""
    from tf_serving_platform.loadtest.session import LoadTest
    from tf_serving_platform.loadtest.slo import Slo

    return LoadTest(out=out, rest=engine.rest_url if args.protocol in ("rest", "both") else None,
                    grpc=engine.grpc_target if args.protocol in ("grpc", "both") else None,
                    model=args.model, signature=args.signature, batch_size=args.batch_size,
                    users=args.users, duration_s=args.duration, processes=args.processes,
                    slo=Slo(args.slo_p99_ms, args.slo_error_rate))


class EngineFailed(Exception):
    """The engine did not become ready; the message says why in one line."""


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(empty log)"


def _measure(args, flags: list[str], index: int, total: int, setting, run_dir: Path):
    """Starts an engine with ``setting``, load-tests it, stops it: ``(Trial, warning)``."""
    from tf_serving_platform.loadtest import report as reports
    from tf_serving_platform.loadtest import runner, session
    from tf_serving_platform.loadtest.tune import Trial
    from tf_serving_platform.servectl.engine_process import EngineProcess

    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "batching.config"
    config_file.write_text(setting.config_text([f"servectl tune: setting #{index} of {total}"]))
    engine = EngineProcess(*flags, "--enable_batching",
                           f"--batching_parameters_file={config_file.resolve()}")
    try:
        try:
            engine.start(timeout=args.engine_timeout)
        except (RuntimeError, TimeoutError) as e:
            reason = "exited" if isinstance(e, RuntimeError) else \
                f"was not ready after {args.engine_timeout:g}s"
            raise EngineFailed(f"the engine for setting #{index} ({setting.describe()}) {reason}"
                               f": {_last_line(engine.log())} (log: {run_dir / 'engine.log'})"
                               ) from None
        test = _load_test(args, engine, run_dir)
        try:
            planned = session.plan(test)
            session.precheck(test, planned)
        except session.LoadTestError as e:
            raise UsageError(str(e)) from None
        outcome = session.execute(test, planned)
        if outcome.report is None:
            note = (f"Locust sent no request (exit {outcome.locust_code}): "
                    f"{_last_line(runner.log_tail(run_dir))}")
            return Trial(index, setting, 0, 0.0, math.nan, math.nan, 0, False, note), None
        session.write_outputs(test, planned, outcome)
        report = outcome.report
    finally:
        status = engine.stop() if engine.process is not None else 0
        (run_dir / "engine.log").write_text(engine.log())
        engine.log_path.unlink(missing_ok=True)
    s = report.overall.get(reports.ALL) or next(iter(report.overall.values()))
    note = "" if status == 0 else f"engine exited {status} when stopped"
    trial = Trial(index, setting, s.requests, s.rps, s.p50_ms, s.p99_ms, s.errors,
                  report.verdict.passed, note)
    return trial, report.generator.warning()


def _progress(trial, total: int) -> str:
    width = len(str(total))
    verdict = "meets SLO" if trial.meets_slo else "misses SLO"
    text = (f"[{trial.index:>{width}}/{total}] {trial.setting.describe()}: "
            f"{trial.rps:.1f} req/s, p50 {trial.p50_ms:.3f} ms, p99 {trial.p99_ms:.3f} ms, "
            f"{trial.errors} errors ({trial.error_rate:.2%}); {verdict}")
    return text + (f" ({trial.note})" if trial.note else "")


def _header(args, chosen, tried: int, grid: int, csv_path: Path) -> list[str]:
    from tf_serving_platform.loadtest.slo import Slo

    slo = Slo(args.slo_p99_ms, args.slo_error_rate)
    protocol = {"rest": "REST", "grpc": "gRPC", "both": "REST and gRPC"}[args.protocol]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    paragraphs = [
        "tensorflow.serving.BatchingParameters (text format), for tensorflow_model_server "
        "--enable_batching --batching_parameters_file=<this file>.",
        f"Written by `servectl tune` on {when}: the highest throughput among the {tried} "
        f"settings tried (of a grid of {grid}) that met the SLO {slo.describe()}.",
        f"Measured: model {args.model} (signature {args.signature}, {args.batch_size}-row "
        f"requests) over {protocol}, {args.users} concurrent Locust users, {args.duration:g}s "
        f"measured per setting, a fresh engine (servectl serve) per setting, on a "
        f"{cores()}-core {platform.machine()} machine.",
        f"Result: {chosen.rps:.1f} req/s, p50 {chosen.p50_ms:.3f} ms, p99 {chosen.p99_ms:.3f} "
        f"ms, {chosen.errors} errors in {chosen.requests} requests (setting #{chosen.index}; "
        f"every setting: {csv_path}).",
        "Only the four swept fields are set; the others keep TensorFlow Serving's defaults. "
        "The numbers hold for this load, model and machine: re-tune when they change.",
    ]
    if sys.argv[1:2] == ["tune"]:  # the console script (not an in-process call)
        paragraphs.append("Command: servectl " + shlex.join(sys.argv[1:]))
    return [line for text in paragraphs for line in textwrap.wrap(text, 96)]


def run(args: argparse.Namespace) -> int:
    from tf_serving_platform.loadtest import tune
    from tf_serving_platform.loadtest.slo import Slo

    if not 0 <= args.slo_error_rate <= 1:
        raise UsageError(f"--slo-error-rate is a fraction in [0, 1]; got {args.slo_error_rate}")
    if args.processes is not None and args.processes < 1 and args.processes != -1:
        raise UsageError(f"--processes is a positive count or -1; got {args.processes}")
    grid, settings = _grid(args)
    flags = _model_flags(args)
    output = _check_paths(args)
    slo = Slo(args.slo_p99_ms, args.slo_error_rate)
    protocol = {"rest": "REST", "grpc": "gRPC", "both": "REST+gRPC"}[args.protocol]
    minutes = len(settings) * (args.duration + SECONDS_PER_START) / 60
    print(f"tuning {args.model}: {len(settings)} of {len(grid)} batching settings, a fresh "
          f"engine each, {args.users} users over {protocol} for {args.duration:g}s (about "
          f"{minutes:.1f} min); SLO {slo.describe()}", flush=True)
    trials, warnings = [], []
    try:
        for index, setting in enumerate(settings, 1):
            name = f"{index:02d}-" + setting.short().replace(" ", "-")
            trial, warning = _measure(args, flags, index, len(settings), setting,
                                      args.out / "runs" / name)
            trials.append(trial)
            warnings += [warning] if warning else []
            print(_progress(trial, len(settings)), flush=True)
    except EngineFailed as e:
        print(f"servectl tune: {e}", file=sys.stderr)
        return EXIT_NONE_MET
    chosen = tune.choose(trials)
    csv_path = tune.write_csv(trials, chosen, args.out / "tune.csv")
    png_path = tune.plot(trials, chosen, args.slo_p99_ms, args.out / "tune.png")
    print(tune.table(trials, chosen))
    print(f"wrote {csv_path}, {png_path}")
    if warnings:
        print(warnings[0], file=sys.stderr)
    if chosen is None:
        print(f"no setting met the SLO ({slo.describe()}); nothing written to {output}")
        return EXIT_NONE_MET
    output.write_text(chosen.setting.config_text(
        _header(args, chosen, len(settings), len(grid), csv_path)))
    print(f"chosen: #{chosen.index} {chosen.setting.describe()}: {chosen.rps:.1f} req/s, "
          f"p99 {chosen.p99_ms:.3f} ms (SLO {slo.describe()})")
    print(f"wrote {output}")
    return 0
