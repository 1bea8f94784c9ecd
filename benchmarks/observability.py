"""What request logging and tracing cost a request: the engine with both off, request logging at
sampling rate 1.0, tracing on (spans exported to a real OTLP receiver) with every request
sampled and with 1 % sampled (``OTEL_TRACES_SAMPLER=parentbased_traceidratio``), and logging
plus full tracing, side by side.

    python -m benchmarks.observability --model digits_mlp --levels 1,32 --duration 6 --rounds 2

All five engines (batching 64, timeout 0, the default front-end processes) are up at once and
driven in turn, level by level and round by round, with wrk (REST) and h2load (gRPC), so drift
on a shared machine falls on each alike. Prints throughput, latency and the server's CPU per
request (every process of its tree), each against "off" at the same point, and writes
``<out>/observability-<model>.json`` and ``.png``. ``--micro`` measures only what the request
path itself pays, in-process (``<out>/observability-micro.json``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import timeit
from pathlib import Path
from statistics import median

from tensorflow_serving.apis import prediction_log_pb2

from benchmarks import external, frontends
from benchmarks.arguments import add_model_and_out, add_sweep, benchmark_parser
from benchmarks.frontends import MAX_BATCH
from benchmarks.plotting import pyplot
from benchmarks.run import export, machine, payloads, start_engine
from tf_serving_platform.serving.tables import format_table

SETTINGS = ("off", "request log 1.0", "tracing", "tracing 1%", "both")
SAMPLED_1_PERCENT = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                     "OTEL_TRACES_SAMPLER_ARG": "0.01"}
"""The standard OpenTelemetry variables: a new trace is sampled one time in a hundred."""


@contextlib.contextmanager
def _environment(changes: dict[str, str]):
    """``changes`` in the environment an engine starts with (and its front-end processes)."""
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key)
            else:
                os.environ[key] = value


def _start(base: Path, model: str, setting: str, logged: Path, endpoint: str):
    with _environment(SAMPLED_1_PERCENT if setting == "tracing 1%" else {}):
        return start_engine(base, model, True, MAX_BATCH,
                            extra=_flags(setting, logged, endpoint))


def _logging_config(base: Path, model: str) -> Path:
    config = base / "logged.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "{model}" base_path: "{base / model}" '
        f'model_platform: "tensorflow" logging_config {{ log_collector_config {{ '
        f'type: "tfrecord" filename_prefix: "{base / "logs" / model}" }} '
        f'sampling_config {{ sampling_rate: 1.0 }} }} }} }}\n')
    return config


def _flags(setting: str, logged: Path, endpoint: str) -> tuple[str, ...]:
    flags = ()
    if setting in ("request log 1.0", "both"):
        flags += (f"--model_config_file={logged}",)
    if setting in ("tracing", "tracing 1%", "both"):
        flags += (f"--tracing_otlp_endpoint={endpoint}",)
    return flags


def measure(servers: dict, model: str, grpc_body: bytes, rest_body: bytes, levels: list[int],
            duration: float, rounds: int) -> list[dict]:
    """:func:`benchmarks.frontends.measure` ``rounds`` times, each row named by its setting."""
    return [{**{k: v for k, v in row.items() if k != "server"}, "setting": row["server"],
             "round": round_}
            for round_ in range(rounds)
            for row in frontends.measure(servers, model, grpc_body, rest_body, levels, duration)]


def summarize(rows: list[dict]) -> list[dict]:
    """Per setting, protocol and level: the median over rounds, and the change against off."""
    keys = dict.fromkeys((r["setting"], r["protocol"], r["concurrency"]) for r in rows)
    out = []
    for setting, protocol, level in keys:
        mine = [r for r in rows if (r["setting"], r["protocol"], r["concurrency"]) ==
                (setting, protocol, level)]
        out.append({"setting": setting, "protocol": protocol, "concurrency": level,
                    "throughput": median([r["throughput"] for r in mine]),
                    "latency_ms": median([r.get("p50_ms", r.get("mean_ms")) for r in mine]),
                    "cpu_us": median([r["server_cpu_us_per_request"] for r in mine]),
                    "errors": sum(r["errors"] for r in mine)})
    base = {(r["protocol"], r["concurrency"]): r for r in out if r["setting"] == "off"}
    for r in out:
        off = base[(r["protocol"], r["concurrency"])]
        r["cpu_us_added"] = r["cpu_us"] - off["cpu_us"]
        r["throughput_ratio"] = r["throughput"] / off["throughput"]
        r["latency_ms_added"] = r["latency_ms"] - off["latency_ms"]
    return out


def report(summary: list[dict]) -> str:
    table = [[r["setting"], r["protocol"], r["concurrency"], f"{r['throughput']:,.0f}",
              f"{r['throughput_ratio']:.2f}", f"{r['latency_ms']:.2f}",
              f"{r['latency_ms_added']:+.2f}", f"{r['cpu_us']:.0f}", f"{r['cpu_us_added']:+.0f}",
              r["errors"]]
             for r in sorted(summary, key=lambda r: (r["protocol"], r["concurrency"],
                                                      SETTINGS.index(r["setting"])))]
    return format_table(["setting", "protocol", "c", "req/s", "vs off", "p50|mean ms",
                         "+ms", "CPU µs/req", "+µs", "errors"], table)


def plot(summary: list[dict], path: Path) -> None:
    plt = pyplot()
    cells = sorted({(r["protocol"], r["concurrency"]) for r in summary})
    figure, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(SETTINGS)
    for i, setting in enumerate(SETTINGS):
        values = [next(r["cpu_us"] for r in summary if r["setting"] == setting
                       and (r["protocol"], r["concurrency"]) == cell) for cell in cells]
        ax.bar([c + i * width for c in range(len(cells))], values, width, label=setting)
    ax.set_xticks([c + 0.4 - width / 2 for c in range(len(cells))],
                  [f"{p} c={c}" for p, c in cells])
    ax.set(ylabel="server CPU µs per request",
           title="What request logging (rate 1.0) and tracing cost a request")
    ax.legend()
    figure.tight_layout()
    figure.savefig(path)


def _per_call_us(call, number: int = 20_000) -> float:
    """Best of five timings of ``call()``, in µs a call."""
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def micro(endpoint: str) -> dict[str, float]:
    """What the request path itself pays, in-process: sampling and queueing a request log
    record (rate 1.0; the writer's work is not on the request path), a request's spans with
    tracing off, and one span with tracing on."""
    from tensorflow_serving.config import model_server_config_pb2

    from tf_serving_platform.serving.engine.request_log import RequestLogs
    from tf_serving_platform.serving.engine.tracing import Tracing

    with tempfile.TemporaryDirectory() as tmp:
        config = model_server_config_pb2.ModelServerConfig()
        model = config.model_config_list.config.add(name="m", base_path="/m")
        model.logging_config.log_collector_config.type = "tfrecord"
        model.logging_config.log_collector_config.filename_prefix = f"{tmp}/m"
        model.logging_config.sampling_config.sampling_rate = 1.0
        logs = RequestLogs(max_queued=10**9)
        logs.update(config)
        record = prediction_log_pb2.PredictionLog
        logging = _per_call_us(lambda: logs.sample("m").submit(record))
        logs.close(timeout=60)
    off, on = Tracing(), Tracing.from_settings(endpoint)

    def request_spans(tracing):
        with tracing.server_span("request", {}, {"model": "m"}) as span, \
                tracing.child("decode", tracing.traceparent(span)):
            pass

    def one_span(tracing):
        with tracing.span("s", attributes={"model": "m"}):
            pass
    result = {"request_log_sample_and_queue_us": logging,
              "tracing_off_request_us": _per_call_us(lambda: request_spans(off)),
              "tracing_on_one_span_us": _per_call_us(lambda: one_span(on), number=5_000)}
    on.shutdown()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    add_model_and_out(parser)
    add_sweep(parser, levels="1,32", duration=6.0, rounds=2)
    parser.add_argument("--micro", action="store_true",
                        help="only the request path's own cost, in-process (µs a call)")
    args = parser.parse_args(argv)
    from benchmarks.otlp_receiver import OtlpReceiver

    if args.micro:
        with OtlpReceiver() as receiver:
            costs = micro(receiver.endpoint)
        print(json.dumps(costs, indent=1))
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "observability-micro.json").write_text(json.dumps(
            {"machine": machine(), **costs}, indent=1))
        return 0
    external.require_tools()

    levels = args.levels
    with tempfile.TemporaryDirectory() as tmp, OtlpReceiver() as receiver:
        base = Path(tmp)
        example = export(args.model, base)[1]
        grpc_body, rest_body = payloads(args.model, example)
        logged = _logging_config(base, args.model)
        engines = {s: _start(base, args.model, s, logged, receiver.endpoint) for s in SETTINGS}
        try:
            servers = {name: (e.process.pid, f"127.0.0.1:{e.grpc_port}", e.rest_url)
                       for name, e in engines.items()}
            rows = measure(servers, args.model, grpc_body, rest_body, levels, args.duration,
                           args.rounds)
        finally:
            for engine in engines.values():
                engine.kill()
        spans = len(receiver.spans())
    summary = summarize(rows)
    print(report(summary))
    print(f"spans received: {spans:,}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"observability-{args.model}.json").write_text(json.dumps(
        {"machine": machine(), "model": args.model, "duration_s": args.duration,
         "rounds": args.rounds, "spans_received": spans, "summary": summary, "rows": rows},
        indent=1))
    plot(summary, args.out / f"observability-{args.model}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
