"""Latency isolation while a version loads: p99 of a small model that serves constant load,
while another model's large version loads and replays its warmup, against its steady p99.

    python -m benchmarks.load_isolation --out benchmarks/results/load_isolation

TensorFlow Serving's issues #1866 and #881. The small model gets an open-loop stream of gRPC
Predicts (``--rate`` per second, each sent on schedule whether or not the last one answered, so a
stall shows as latency). Each repeat: a steady window, then the large model is added with
HandleReloadConfigRequest (the load window ends when it is AVAILABLE, warmup replayed), then it
is removed again. Prints p99 steady vs during the load per repeat and pooled, and writes
``<out>.json`` and ``<out>.png`` (latency over time, load windows shaded).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.lifecycle import (
    ModelSwitch,
    export_zoo,
    machine,
    start_engine,
    write_json,
)
from benchmarks.plotting import pyplot

PREDICT = "/tensorflow.serving.PredictionService/Predict"
SETTLE_S = 1.0
"""Left out of the steady window after an unload (its garbage collection is not steady state)."""


def predict_payload(name: str, base_path: Path) -> bytes:
    """A serialized one-example PredictRequest for ``serving_default`` of version 1 (zeros of
    each input's dtype, unknown dimensions 1)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from tf_serving_platform.serving import codec
    from tf_serving_platform.serving.engine.servable import read_signature_defs

    signature = read_signature_defs(base_path / "1", {"serve"})["serving_default"]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for alias, info in signature.inputs.items():
        shape = [max(d.size, 1) for d in info.tensor_shape.dim]
        value = np.zeros(shape, tf.as_dtype(info.dtype).as_numpy_dtype)
        request.inputs[alias].CopyFrom(codec.ndarray_to_tensor_proto(value))
    return request.SerializeToString()


@dataclass(frozen=True)
class Sample:
    sent: float
    """time.monotonic() when the request was sent."""
    latency_ms: float
    ok: bool


class OpenLoop:
    """``rate`` Predicts per second from a thread of its own, each on schedule."""

    def __init__(self, target: str, payload: bytes, rate: float):
        self._target, self._payload, self._rate = target, payload, rate
        self._stop = threading.Event()
        self.samples: list[Sample] = []
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> OpenLoop:
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join()
        return sorted(self.samples, key=lambda s: s.sent)

    async def _main(self) -> None:
        import grpc

        async with grpc.aio.insecure_channel(self._target) as channel:
            call = channel.unary_unary(PREDICT, request_serializer=None,
                                       response_deserializer=None)
            tasks, started, sent = set(), time.monotonic(), 0
            while not self._stop.is_set():
                task = asyncio.create_task(self._one(call))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
                await asyncio.sleep(max(0.0, started + sent / self._rate - time.monotonic()))
            await asyncio.gather(*tasks)

    async def _one(self, call) -> None:
        import grpc

        sent, clock = time.monotonic(), time.perf_counter()
        try:
            await call(self._payload, timeout=30)
            ok = True
        except grpc.RpcError:
            ok = False
        self.samples.append(Sample(sent, (time.perf_counter() - clock) * 1000, ok))


def p99(samples: list[Sample], start: float, end: float) -> tuple[float, int]:
    """p99 latency (ms) of the answered requests sent in ``[start, end)``, and their count."""
    found = [s.latency_ms for s in samples if start <= s.sent < end and s.ok]
    return (float(np.percentile(found, 99)) if found else float("nan")), len(found)


def measure(switch: ModelSwitch, loop: OpenLoop, repeats: int, steady_s: float,
            after_s: float) -> list[dict]:
    """Per repeat: the steady window, the load window (until AVAILABLE), then an unload."""
    windows = []
    for repeat in range(repeats):
        steady_start = time.monotonic()
        time.sleep(steady_s)
        load_start = time.monotonic()
        switch.load()
        load_end = time.monotonic()
        time.sleep(after_s)
        switch.unload()
        windows.append({"steady": (steady_start, load_start), "load": (load_start, load_end)})
        print(f"repeat {repeat + 1}/{repeats}: loaded in {load_end - load_start:.2f}s",
              file=sys.stderr, flush=True)
        time.sleep(SETTLE_S)
    return windows


def summarize(samples: list[Sample], windows: list[dict]) -> dict:
    """p99 steady and during the load, per repeat and pooled over the repeats."""
    repeats = []
    for w in windows:
        steady, n_steady = p99(samples, *w["steady"])
        load, n_load = p99(samples, *w["load"])
        repeats.append({"steady_p99_ms": steady, "load_p99_ms": load, "ratio": load / steady,
                        "steady_n": n_steady, "load_n": n_load,
                        "load_s": w["load"][1] - w["load"][0]})
    inside = [s for s in samples if any(a <= s.sent < b for a, b in
                                        (w["load"] for w in windows))]
    outside = [s for s in samples if any(a <= s.sent < b for a, b in
                                         (w["steady"] for w in windows))]
    pooled_steady = p99(outside, 0, float("inf"))[0]
    pooled_load = p99(inside, 0, float("inf"))[0]
    ratios = [r["ratio"] for r in repeats]
    return {"repeats": repeats, "steady_p99_ms": pooled_steady, "load_p99_ms": pooled_load,
            "ratio": pooled_load / pooled_steady, "ratio_median": float(np.median(ratios)),
            "ratio_min": min(ratios), "ratio_max": max(ratios),
            "errors": sum(not s.ok for s in samples), "requests": len(samples)}


def plot(record: dict, path: Path) -> None:
    """Latency of every request over time, load windows shaded."""
    plt = pyplot()
    t0 = record["samples"][0][0]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot([s[0] - t0 for s in record["samples"]], [s[1] for s in record["samples"]], ".",
            ms=2, label=f"{record['small']} latency ({record['rate']:.0f} req/s, gRPC)")
    for i, w in enumerate(record["windows"]):
        ax.axvspan(w["load"][0] - t0, w["load"][1] - t0, color="orange", alpha=0.3,
                   label=f"{record['large']} loading + warmup" if i == 0 else None)
    s = record["summary"]
    ax.set(xlabel="time (s)", ylabel="latency (ms)", yscale="log",
           title=f"{record['label']}: p99 steady {s['steady_p99_ms']:.1f} ms, during load "
                 f"{s['load_p99_ms']:.1f} ms ({s['ratio']:.1f}x; per repeat "
                 f"{s['ratio_min']:.1f}-{s['ratio_max']:.1f}x)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace, models: Path, workdir: Path) -> dict:
    """Start the engine on the small model, keep the load on it, load the large one N times."""
    small = {args.small: export_zoo(args.small, models)}
    large = export_zoo(args.large, models)
    engine = start_engine(small, workdir, *args.engine_flag)
    switch = ModelSwitch(engine, small, args.large, large)
    loop = OpenLoop(engine.grpc_target, predict_payload(args.small, small[args.small]),
                    args.rate).start()
    try:
        windows = measure(switch, loop, args.repeats, args.steady, args.after)
    finally:
        samples = loop.stop()
        switch.close()
        engine.stop()
    return {"windows": windows, "samples": [(s.sent, s.latency_ms, s.ok) for s in samples],
            "summary": summarize(samples, windows)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", default="digits_cnn", help="the zoo model under load")
    parser.add_argument("--large", default="mobilenet_v2", help="the zoo model that loads")
    parser.add_argument("--rate", type=float, default=50, help="requests per second")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steady", type=float, default=8, help="steady window (s)")
    parser.add_argument("--after", type=float, default=2, help="wait after a load (s)")
    parser.add_argument("--engine-flag", action="append", default=[], metavar="FLAG")
    parser.add_argument("--engine-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--models-dir", type=Path,
                        help="export zoo models into (and reuse them from) this directory")
    parser.add_argument("--label", default="load isolation")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/load_isolation"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.update(kv.split("=", 1) for kv in args.engine_env)
    with tempfile.TemporaryDirectory() as tmp:
        found = run(args, args.models_dir or Path(tmp) / "models", Path(tmp))
    record = {"label": args.label, "small": args.small, "large": args.large, "rate": args.rate,
              "engine_flags": args.engine_flag, "engine_env": args.engine_env,
              "machine": machine(), **found}
    write_json(args.out.with_suffix(".json"), record)
    plot(record, args.out.with_suffix(".png"))
    s = record["summary"]
    for i, r in enumerate(s["repeats"], 1):
        print(f"repeat {i}: steady p99 {r['steady_p99_ms']:.1f} ms (n={r['steady_n']}), during "
              f"the load {r['load_p99_ms']:.1f} ms (n={r['load_n']}, {r['load_s']:.2f}s): "
              f"{r['ratio']:.1f}x")
    print(f"{args.label}: p99 steady {s['steady_p99_ms']:.1f} ms, during the load "
          f"{s['load_p99_ms']:.1f} ms: {s['ratio']:.1f}x (per repeat median "
          f"{s['ratio_median']:.1f}x, {s['ratio_min']:.1f}-{s['ratio_max']:.1f}x); "
          f"{s['errors']} errors of {s['requests']}; wrote {args.out.with_suffix('.json')}, "
          f"{args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
