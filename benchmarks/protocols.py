"""The Open Inference Protocol (KServe V2) against TensorFlow Serving's API, on one engine and
one model: requests/s and latency percentiles of each wire.

    python -m benchmarks.protocols --model digits_mlp --levels 1,16 --duration 5 --rounds 2

One engine (``--enable_v2_protocol``, batching 64 / timeout 0) serves both; the same single
example goes as a TF Serving REST row body, a V2 JSON body, a V2 body with the binary tensor
data extension (input and outputs binary), a TF Serving ``PredictRequest`` and a V2
``ModelInferRequest`` (``raw_input_contents``). The generator is :mod:`benchmarks.loadgen`
(raw latency samples, so p99 on both wires), one process; the wires take turns, level by level
and round by round. Writes ``<out>/protocols-<model>.json`` and ``.png``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from statistics import median

import numpy as np
import orjson

from benchmarks.arguments import add_model_and_out, add_sweep, benchmark_parser
from benchmarks.frontends import MAX_BATCH
from benchmarks.loadgen import Endpoint, run_level
from benchmarks.plotting import pyplot
from benchmarks.run import export, machine, payloads, start_engine
from tf_serving_platform.serving.client import ModelRef
from tf_serving_platform.serving.tables import format_table

V2_INFER = "/inference.GRPCInferenceService/ModelInfer"


def v2_bodies(model: str, example: dict[str, np.ndarray]) -> dict[str, tuple]:
    """``{name: (body, headers)}`` of the three V2 encodings of one example."""
    from tritonclient.grpc import service_pb2

    from tf_serving_platform.serving.codec import v2 as codec_v2

    tensors = [(alias, codec_v2.datatype_of(array), list(array.shape), array)
               for alias, array in sorted(example.items())]
    as_json = orjson.dumps({"inputs": [
        {"name": a, "datatype": d, "shape": s, "data": codec_v2.to_json(v)}
        for a, d, s, v in tensors]}, option=orjson.OPT_SERIALIZE_NUMPY)
    raws = [codec_v2.to_raw(v) for *_, v in tensors]
    header = orjson.dumps({"inputs": [
        {"name": a, "datatype": d, "shape": s, "parameters": {"binary_data_size": len(r)}}
        for (a, d, s, _), r in zip(tensors, raws, strict=True)],
        "parameters": {"binary_data_output": True}})
    request = service_pb2.ModelInferRequest(model_name=model)
    for alias, datatype, shape, _ in tensors:
        request.inputs.add(name=alias, datatype=datatype, shape=shape)
    request.raw_input_contents.extend(raws)
    return {"V2 REST JSON": (as_json, None),
            "V2 REST binary": (header + b"".join(raws),
                               {"Inference-Header-Content-Length": str(len(header))}),
            "V2 gRPC": (request.SerializeToString(), None)}


def targets(model: str, example: dict, engine) -> dict[str, Endpoint]:
    grpc_body, rest_body = payloads(model, example)
    v2 = v2_bodies(model, example)
    ref = ModelRef(model)
    rest, infer = engine.rest_url + ref.rest_path(":predict"), \
        engine.rest_url + ref.v2_path("/infer")
    return {"TF REST": Endpoint("rest", rest, rest_body),
            "V2 REST JSON": Endpoint("rest", infer, v2["V2 REST JSON"][0]),
            "V2 REST binary": Endpoint("rest", infer, v2["V2 REST binary"][0],
                                       headers=v2["V2 REST binary"][1]),
            "TF gRPC": Endpoint("grpc", engine.grpc_target, grpc_body),
            "V2 gRPC": Endpoint("grpc", engine.grpc_target, v2["V2 gRPC"][0], method=V2_INFER)}


def measure(wires: dict[str, Endpoint], levels: list[int], duration: float, rounds: int
            ) -> list[dict]:
    rows = []
    for round_ in range(rounds):
        for level in levels:
            for name, target in wires.items():
                result = run_level(target, level, duration, processes=1)
                row = {"wire": name, "round": round_, "concurrency": level,
                       "throughput": result.throughput, "p50_ms": result.percentile(50),
                       "p99_ms": result.percentile(99), "errors": result.errors,
                       "generator_cpu": result.generator_cpu}
                print(f"  round {round_} {name:<15} c={level:<3} {row['throughput']:8.1f} req/s"
                      f"  p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms  "
                      f"errors {row['errors']}", file=sys.stderr, flush=True)
                rows.append(row)
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Medians over rounds; each V2 wire against TF Serving's API on the same transport."""
    keys = dict.fromkeys((r["wire"], r["concurrency"]) for r in rows)
    out = [{"wire": wire, "concurrency": level,
            **{k: median(r[k] for r in rows if (r["wire"], r["concurrency"]) == (wire, level))
               for k in ("throughput", "p50_ms", "p99_ms")},
            "errors": sum(r["errors"] for r in rows
                          if (r["wire"], r["concurrency"]) == (wire, level))}
           for wire, level in keys]
    base = {(r["wire"], r["concurrency"]): r for r in out}
    for r in out:
        tf = base[("TF gRPC" if "gRPC" in r["wire"] else "TF REST", r["concurrency"])]
        r["vs_tf"] = r["throughput"] / tf["throughput"]
    return out


def report(summary: list[dict]) -> str:
    table = [[r["wire"], r["concurrency"], f"{r['throughput']:,.0f}", f"{r['vs_tf']:.2f}",
              f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", r["errors"]]
             for r in sorted(summary, key=lambda r: (r["concurrency"], r["wire"]))]
    return format_table(["wire", "c", "req/s", "vs TF API", "p50 ms", "p99 ms", "errors"],
                        table)


def plot(summary: list[dict], path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    wires = list(dict.fromkeys(r["wire"] for r in summary))
    for ax, (key, label) in zip(axes, (("throughput", "requests/s"), ("p99_ms", "p99 ms")),
                                strict=True):
        levels = sorted({r["concurrency"] for r in summary})
        width = 0.8 / len(wires)
        for i, wire in enumerate(wires):
            ax.bar([x + i * width for x in range(len(levels))],
                   [next(r[key] for r in summary if r["wire"] == wire
                         and r["concurrency"] == level) for level in levels], width,
                   label=wire)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(levels))],
                      [f"c={level}" for level in levels])
        ax.set(ylabel=label)
    axes[0].legend(fontsize=8)
    figure.suptitle("Open Inference Protocol (V2) against TensorFlow Serving's API, one engine")
    figure.tight_layout()
    figure.savefig(path)


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    add_model_and_out(parser)
    add_sweep(parser, levels="1,16", duration=5.0, rounds=2)
    args = parser.parse_args(argv)
    levels = args.levels
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        example = export(args.model, base)[1]
        engine = start_engine(base, args.model, True, MAX_BATCH,
                              extra=("--enable_v2_protocol",))
        try:
            rows = measure(targets(args.model, example, engine), levels, args.duration,
                           args.rounds)
        finally:
            engine.kill()
    summary = summarize(rows)
    print(report(summary))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"protocols-{args.model}.json").write_text(json.dumps(
        {"machine": machine(), "model": args.model, "duration_s": args.duration,
         "rounds": args.rounds, "summary": summary, "rows": rows}, indent=1))
    plot(summary, args.out / f"protocols-{args.model}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
