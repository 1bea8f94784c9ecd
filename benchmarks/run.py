"""Benchmark one model, every mode side by side in one run, against the physical limit.

    python -m benchmarks.run --model digits_mlp --levels 1,8,32,64 --duration 5

Measures (a) the in-process limit: the signature called directly at the best batch size, and the
single-example latency; (b) the engine over gRPC and REST, batching on and off, at each
concurrency level, with the multi-process generator of :mod:`benchmarks.loadgen`; (c) the course
baseline: Flask calling ``model.predict`` per request. Prints a table with throughput, p50, p95,
p99, errors and the generator's CPU, the ratios served/in-process and engine/Flask, and writes
``<out>/<model>.json`` and ``<out>/<model>.png`` (throughput vs p99 per mode).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from benchmarks import noop_server
from benchmarks.arguments import add_model_and_out, add_sweep, benchmark_parser
from benchmarks.inprocess import in_process_limit
from benchmarks.loadgen import Endpoint, LevelResult, predict_path, run_level
from benchmarks.plotting import pyplot
from tf_serving_platform.servectl.engine_process import EngineProcess, free_port
from tf_serving_platform.serving.tables import format_table

MODES = ("grpc+batching", "grpc", "rest+batching", "rest", "flask", "noop-grpc", "noop-rest")
BATCHING = """max_batch_size {{ value: {size} }}
batch_timeout_micros {{ value: 0 }}
max_enqueued_batches {{ value: 100000 }}
num_batch_threads {{ value: {threads} }}
"""


def payloads(model: str, example: dict[str, np.ndarray]) -> tuple[bytes, bytes]:
    """The same single example as a gRPC PredictRequest and a REST row-format body."""
    from tensorflow_serving.apis import predict_pb2

    from tf_serving_platform.serving import codec

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    for name, value in example.items():
        request.inputs[name].CopyFrom(codec.ndarray_to_tensor_proto(value))
    rest = json.dumps({"instances": [{k: v[0].tolist() for k, v in example.items()}]})
    return request.SerializeToString(), rest.encode()


def export(model: str, base: Path):
    """Export the zoo model's versions under ``base``: its source and one test example."""
    from tf_serving_platform.export import pipeline, sources

    source = sources.resolve(model, progress=False)
    pipeline.export_model(source, base, progress=False)
    return source, {k: v[:1] for k, v in source.data.x_test.items()}


def start_engine(base: Path, model: str, batching: bool, max_batch: int,
                 workers: int = 1, frontend_processes: int = 0,
                 extra: tuple[str, ...] = ()) -> EngineProcess:
    """``extra``: more flags (a ``--model_config_file`` overrides the single-model ones)."""
    flags = [f"--model_name={model}", f"--model_base_path={base / model}",
             "--file_system_poll_wait_seconds=0", f"--workers={workers}",
             f"--frontend_processes={frontend_processes}", *extra]
    if batching:
        config = base / "batching.config"
        config.write_text(BATCHING.format(size=max_batch, threads=os.cpu_count() or 1))
        flags += ["--enable_batching", f"--batching_parameters_file={config}"]
    return EngineProcess(*flags).start(timeout=300)


def start_flask(keras_file: Path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.flask_baseline",
                                str(keras_file), str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
        except urllib.error.HTTPError:
            return process, port  # Flask answers (404 on /): it is up
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the Flask baseline did not start")


def run_noop(model: str, modes: list[str], grpc_payload: bytes, rest_payload: bytes,
             levels: list[int], duration: float, processes: int
             ) -> dict[str, list[LevelResult]]:
    """The same load against :mod:`benchmarks.noop_server`: the front ends' own ceiling."""
    process, grpc_port, rest_port = noop_server.start()
    try:
        found = {}
        if "noop-grpc" in modes:
            found["noop-grpc"] = sweep(Endpoint("grpc", f"127.0.0.1:{grpc_port}", grpc_payload),
                                       levels, duration, processes, "noop-grpc")
        if "noop-rest" in modes:
            url = f"http://127.0.0.1:{rest_port}{predict_path(model)}"
            found["noop-rest"] = sweep(Endpoint("rest", url, rest_payload),
                                       levels, duration, processes, "noop-rest")
        return found
    finally:
        process.kill()


def sweep(target: Endpoint, levels: list[int], duration: float, processes: int,
          mode: str) -> list[LevelResult]:
    results = []
    for level in levels:
        result = run_level(target, level, duration, processes)
        print(f"  {mode:<14} c={level:<4} {result.throughput:9.1f} req/s  "
              f"p50 {result.percentile(50):7.2f} ms  p99 {result.percentile(99):7.2f} ms  "
              f"errors {result.errors}  generator cpu {result.generator_cpu:.2f}",
              file=sys.stderr, flush=True)
        results.append(result)
    return results


def run_modes(model: str, base: Path, keras_file: Path, example: dict, modes: list[str],
              levels: list[int], duration: float, processes: int, max_batch: int,
              workers: int = 1) -> dict[str, list[LevelResult]]:
    grpc_payload, rest_payload = payloads(model, example)
    found: dict[str, list[LevelResult]] = {}
    for batching in (True, False):
        wanted = [m for m in modes if m in (("grpc+batching", "rest+batching") if batching
                                            else ("grpc", "rest"))]
        if not wanted:
            continue
        engine = start_engine(base, model, batching, max_batch, workers)
        try:
            for mode in wanted:
                target = Endpoint("grpc", engine.grpc_target, grpc_payload) \
                    if mode.startswith("grpc") else \
                    Endpoint("rest", engine.rest_url + predict_path(model), rest_payload)
                found[mode] = sweep(target, levels, duration, processes, mode)
        finally:
            engine.stop()
    if any(m.startswith("noop") for m in modes):
        found.update(run_noop(model, modes, grpc_payload, rest_payload, levels, duration,
                              processes))
    if "flask" in modes:
        process, port = start_flask(keras_file)
        try:
            target = Endpoint("rest", f"http://127.0.0.1:{port}{predict_path(model)}",
                              rest_payload)
            found["flask"] = sweep(target, levels, duration, processes, "flask")
        finally:
            process.kill()
    return found


def report(model: str, limit: dict, found: dict[str, list[LevelResult]], out: Path) -> str:
    rows = [(mode, r.concurrency, f"{r.throughput:.1f}", f"{r.percentile(50):.2f}",
             f"{r.percentile(95):.2f}", f"{r.percentile(99):.2f}", r.errors,
             f"{r.generator_cpu:.2f}") for mode, results in found.items() for r in results]
    table = format_table(["mode", "concurrency", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors",
                          "gen cpu"], rows, markdown=True)
    best = {mode: max(r.throughput for r in results) for mode, results in found.items()}
    lines = [f"### {model}", "",
             f"In-process limit: {limit['best_examples_per_s']:.1f} examples/s at batch "
             f"{limit['best_batch']}; single-example call p50 {limit['single_p50_ms']:.3f} ms.",
             "", table, ""]
    for mode, value in best.items():
        lines.append(f"- {mode}: peak {value:.1f} req/s = "
                     f"{value / limit['best_examples_per_s']:.1%} of the in-process limit"
                     + (f", {value / best['flask']:.1f}x Flask" if best.get("flask") and
                        mode != "flask" else ""))
    text = "\n".join(lines) + "\n"
    record = {"model": model, "machine": machine(), "in_process": limit,
              "modes": {m: [{"concurrency": r.concurrency, "throughput": r.throughput,
                             "p50": r.percentile(50), "p95": r.percentile(95),
                             "p99": r.percentile(99), "errors": r.errors,
                             "generator_cpu": r.generator_cpu} for r in rs]
                        for m, rs in found.items()}}
    (out / f"{model}.json").write_text(json.dumps(record, indent=1))
    plot(record, out / f"{model}.png")
    return text


def plot(record: dict, path: Path) -> None:
    """Throughput vs p99 per mode (log-log), with the in-process limit, from a results JSON."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for mode, levels in record["modes"].items():
        ax.plot([r["throughput"] for r in levels], [r["p99"] for r in levels], "o-", label=mode)
    ax.axvline(record["in_process"]["best_examples_per_s"], color="grey", linestyle="--",
               label="in-process limit (best batch)")
    ax.set(xlabel="throughput (requests/s, one example each)", ylabel="p99 latency (ms)",
           title=f"{record['model']}: throughput vs p99", xscale="log", yscale="log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine() -> str:
    """What the figures were measured on: machines of one kind differ in CPU (and in its
    vector units, which TensorFlow's kernels and simdjson pick at run time)."""
    return f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()}), " \
           f"{platform.platform()}, Python {platform.python_version()}"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    add_model_and_out(parser)
    add_sweep(parser, levels="1,8,32,64", duration=5.0)
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="engine processes (SO_REUSEPORT)")
    parser.add_argument("--replot", type=Path, help="redraw the PNG of a results JSON and exit")
    args = parser.parse_args(argv)
    if args.replot:
        plot(json.loads(args.replot.read_text()), args.replot.with_suffix(".png"))
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        source, example = export(args.model, base)
        keras_file = base / f"{args.model}.keras"
        source.model.save(keras_file)
        limit = in_process_limit(base / args.model / "1", example)
        print(f"in-process: {limit}", file=sys.stderr)
        found = run_modes(args.model, base, keras_file, example, args.modes.split(","),
                          args.levels, args.duration,
                          args.processes, args.max_batch, args.workers)
    text = report(args.model, limit, found, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
