"""``--frontend_processes``: one process against one per core, measured side by side.

    python -m benchmarks.frontends --model digits_mlp --levels 1,8,32,64 --duration 8

Exports the model once, starts one engine per front-end count (batching 64, timeout 0, one
batch thread per core), all up at once, and the no-op servers of :mod:`benchmarks.noop_server`
as the ceiling of a Python front end; then, level by level, drives each with wrk (REST) and
h2load (gRPC) in turn, so that drift on a shared machine falls on every server alike. Prints
throughput, latency, the server's CPU per request (every process of its tree), its cores and
the machine's busy share, the ratio of each count to one process, and writes
``<out>/frontends-<model>.json`` and ``.png``. ``--unbatched`` adds the first count with batching
off: what batching costs a lone request (c = 1) and what it buys under load.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from benchmarks import external, noop_server
from benchmarks.arguments import add_model_and_out, add_sweep, benchmark_parser
from benchmarks.inprocess import in_process_limit
from benchmarks.loadgen import predict_path
from benchmarks.plotting import pyplot
from benchmarks.run import export, machine, payloads, start_engine
from tf_serving_platform.servectl.arguments import int_list
from tf_serving_platform.serving.engine.cpus import usable_cpus
from tf_serving_platform.serving.tables import format_table

MAX_BATCH = 64


def measure(servers: dict[str, tuple[int, str, str]], model: str, grpc_body: bytes,
            rest_body: bytes, levels: list[int], duration: float) -> list[dict]:
    """``servers``: name -> (pid, gRPC address, REST base URL); one row per server, protocol
    and level."""
    rows = []
    for level in levels:
        for name, (pid, grpc_address, rest_url) in servers.items():
            for protocol in ("REST", "gRPC"):
                measured = (external.wrk(rest_url + predict_path(model), rest_body,
                                         level, duration, pid) if protocol == "REST" else
                            external.h2load(grpc_address, grpc_body, level, duration, pid))
                row = {"server": name, "protocol": protocol, **measured.row()}
                print(f"  {name:<16} {protocol:<4} c={level:<3} {row['throughput']:8.1f} req/s"
                      f"  {row['server_cpu_us_per_request']:7.1f} µs CPU/request  "
                      f"cores {row['server_cores']:.2f}  busy {row['machine_busy']:.0%}",
                      file=sys.stderr, flush=True)
                rows.append(row)
    return rows


def report(rows: list[dict], baseline: str) -> str:
    """One line per row, with its throughput over the baseline server's at the same point."""
    base = {(r["protocol"], r["concurrency"]): r["throughput"] for r in rows
            if r["server"] == baseline}
    table = [[r["server"], r["protocol"], r["concurrency"], f"{r['throughput']:,.0f}",
              f"{r.get('p50_ms', r.get('mean_ms')):.2f}", f"{r['server_cpu_us_per_request']:.0f}",
              f"{r['server_cores']:.2f}", f"{r['machine_busy']:.0%}",
              f"{r['throughput'] / base[(r['protocol'], r['concurrency'])]:.2f}x", r["errors"]]
             for r in sorted(rows, key=lambda r: (r["protocol"], r["concurrency"]))]
    return format_table(["server", "protocol", "c", "req/s", "p50|mean ms", "CPU µs/req",
                         "cores", "busy", f"vs {baseline}", "errors"], table)


def plot(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for protocol, ax in zip(("REST", "gRPC"), axes, strict=True):
        for server in dict.fromkeys(r["server"] for r in rows):
            points = [r for r in rows if r["server"] == server and r["protocol"] == protocol]
            ax.plot([r["concurrency"] for r in points], [r["throughput"] for r in points],
                    marker="o", label=server)
        ax.set(title=protocol, xlabel="concurrent connections", ylabel="requests/s",
               xscale="log", ylim=(0, None))
        ax.legend()
    figure.suptitle("--frontend_processes: throughput by front-end count (one machine)")
    figure.tight_layout()
    figure.savefig(path)


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    add_model_and_out(parser)
    parser.add_argument("--counts", type=int_list(1), default=f"1,{usable_cpus()}",
                        help="front-end process counts to compare (default: 1 and one per CPU)")
    parser.add_argument("--unbatched", action="store_true",
                        help="also the first count without batching (the latency tax at c = 1)")
    parser.add_argument("--in-process-limit", action="store_true",
                        help="also the signature called directly, no server (examples/s)")
    add_sweep(parser, levels="1,8,32,64", duration=8.0)
    args = parser.parse_args(argv)
    external.require_tools()
    counts = sorted(args.counts)
    levels = args.levels
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        example = export(args.model, base)[1]
        grpc_body, rest_body = payloads(args.model, example)
        limit = in_process_limit(base / args.model / "1", example) if args.in_process_limit \
            else None
        if limit:
            print(f"in-process limit: {limit['best_examples_per_s']:,.1f} examples/s",
                  file=sys.stderr, flush=True)
        engines = {f"frontends={n}": start_engine(base, args.model, True, MAX_BATCH,
                                                  frontend_processes=n) for n in counts}
        if args.unbatched:
            engines[f"frontends={counts[0]}, no batching"] = start_engine(
                base, args.model, False, MAX_BATCH, frontend_processes=counts[0])
        noop, noop_grpc, noop_rest = noop_server.start()
        try:
            servers = {name: (e.process.pid, f"127.0.0.1:{e.grpc_port}", e.rest_url)
                       for name, e in engines.items()}
            servers["no-op (1 process)"] = (noop.pid, f"127.0.0.1:{noop_grpc}",
                                            f"http://127.0.0.1:{noop_rest}")
            rows = measure(servers, args.model, grpc_body, rest_body, levels, args.duration)
        finally:
            noop.kill()
            for engine in engines.values():
                engine.kill()
    text = report(rows, f"frontends={counts[0]}")
    print(text)
    if limit:
        print(f"in-process limit: {limit['best_examples_per_s']:,.1f} examples/s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"frontends-{args.model}.json").write_text(json.dumps(
        {"machine": machine(), "model": args.model, "max_batch_size": MAX_BATCH,
         "duration_s": args.duration, "in_process": limit, "rows": rows}, indent=1))
    plot(rows, args.out / f"frontends-{args.model}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
