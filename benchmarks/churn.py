"""Version churn without leaks: load and unload one version N times in a running engine.

    python -m benchmarks.churn --model mobilenet_v2 --cycles 50 \\
        --out benchmarks/results/churn_mobilenet_v2

A second model is added to and removed from the engine's config with HandleReloadConfigRequest
(TensorFlow Serving's issues #1664 and #2142: memory not released on unload). The engine's
resident memory (VmRSS) is read before the first load, after every load and after every
unload; one version's footprint is the first load's increase. Writes ``<out>.json`` and
``<out>.png`` (RSS per cycle). ``--model weights`` builds a SavedModel of ``--megabytes`` of
float32 variables instead of exporting a zoo model; ``--chunk-kb`` sizes its variables (at
256 KB and above they live in oneDNN's BFC pool, which TensorFlow never hands back).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.lifecycle import (
    ModelSwitch,
    export_zoo,
    machine,
    rss_mb,
    save_weights_model,
    start_engine,
    write_json,
)
from benchmarks.plotting import pyplot

RESIDENT = "resident"
CHURNED = "churned"
ENDS = 5


@dataclass
class ChurnResult:
    """RSS of the engine (MiB) through a churn; cycle ``i`` is one load and one unload."""

    start_mb: float
    loaded_mb: list[float] = field(default_factory=list)
    unloaded_mb: list[float] = field(default_factory=list)
    load_s: list[float] = field(default_factory=list)
    unload_s: list[float] = field(default_factory=list)
    at_start: dict = field(default_factory=dict)
    """With ``at_start``: RSS with the version loaded at start-up, after its unload, released."""

    @property
    def footprint_mb(self) -> float:
        """One loaded version: the first load's increase over the start."""
        return self.loaded_mb[0] - self.start_mb

    @property
    def retained_mb(self) -> float:
        """What the churn left behind: RSS after the last unloads over the start."""
        return self._median_of_last() - self.start_mb

    @property
    def growth_mb(self) -> float:
        """Growth over the cycles (a leak grows every cycle): last unloads over the first."""
        return self._median_of_last() - statistics.median(self.unloaded_mb[:ENDS])

    def _median_of_last(self) -> float:
        """RSS after the last :data:`ENDS` unloads: one caught while the allocator holds a few
        MiB more for a moment (seen: up to +20 MiB once in 50) moves neither figure."""
        return statistics.median(self.unloaded_mb[-ENDS:])

    def summary(self) -> dict:
        footprint = self.footprint_mb
        released = [up - down for up, down in zip(self.loaded_mb, self.unloaded_mb, strict=True)]
        return {"footprint_mb": footprint, "retained_mb": self.retained_mb,
                "retained_x_footprint": self.retained_mb / footprint,
                "released_per_unload_mb": sum(released) / len(released),
                "growth_mb": self.growth_mb, "growth_x_footprint": self.growth_mb / footprint,
                "cycles": len(self.unloaded_mb)}


def churn(switch: ModelSwitch, pid: int, cycles: int,
          progress: Callable[[int, ChurnResult], None] = lambda i, r: None) -> ChurnResult:
    """``cycles`` loads and unloads of ``switch``'s model, RSS read after each step."""
    result = ChurnResult(start_mb=rss_mb(pid))
    for cycle in range(cycles):
        result.load_s.append(switch.load())
        result.loaded_mb.append(rss_mb(pid))
        result.unload_s.append(switch.unload())
        result.unloaded_mb.append(rss_mb(pid))
        progress(cycle, result)
    return result


def run_churn(churned: Path, workdir: Path, cycles: int, *flags: str, at_start: bool = False,
              progress: Callable[[int, ChurnResult], None] = lambda i, r: None) -> ChurnResult:
    """Start an engine serving a tiny resident model, churn ``churned`` in it, stop it.

    ``at_start``: the engine starts with ``churned`` loaded too, and unloads it first; what
    that unload releases is ``result.at_start``, a version loaded at start-up.
    """
    resident = {RESIDENT: save_weights_model(workdir / RESIDENT / "1", 0.01).parent}
    engine = start_engine({**resident, CHURNED: churned} if at_start else resident, workdir,
                          *flags)
    switch = ModelSwitch(engine, resident, CHURNED, churned)
    try:
        first = _unload_at_start(switch, engine.process.pid) if at_start else {}
        result = churn(switch, engine.process.pid, cycles, progress)
        result.at_start = first
        return result
    finally:
        switch.close()
        status = engine.stop()
        if status != 0:
            raise RuntimeError(f"engine exited with {status}:\n{engine.log()}")


def _unload_at_start(switch: ModelSwitch, pid: int) -> dict:
    loaded = rss_mb(pid)
    switch.unload()
    unloaded = rss_mb(pid)
    return {"loaded_mb": loaded, "unloaded_mb": unloaded, "released_mb": loaded - unloaded}


def print_cycle(cycle: int, result: ChurnResult) -> None:
    print(f"cycle {cycle + 1:3d}: loaded {result.loaded_mb[-1]:8.1f} MiB "
          f"(+{result.loaded_mb[-1] - result.start_mb:6.1f}) in {result.load_s[-1]:5.2f}s, "
          f"unloaded {result.unloaded_mb[-1]:8.1f} MiB "
          f"(+{result.unloaded_mb[-1] - result.start_mb:6.1f}) in {result.unload_s[-1]:5.2f}s",
          file=sys.stderr, flush=True)


def plot(record: dict, path: Path) -> None:
    """RSS after each load and unload, with the start and start + one footprint."""
    plt = pyplot()
    cycles = range(1, len(record["unloaded_mb"]) + 1)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(cycles, record["loaded_mb"], "o-", ms=3, label="after load (AVAILABLE)")
    ax.plot(cycles, record["unloaded_mb"], "s-", ms=3, label="after unload (END)")
    start, footprint = record["start_mb"], record["summary"]["footprint_mb"]
    ax.axhline(start, color="grey", linestyle="--", label="before the first load")
    ax.axhline(start + footprint, color="grey", linestyle=":",
               label=f"start + one version ({footprint:.0f} MiB)")
    summary = record["summary"]
    ax.set(xlabel="cycle", ylabel="engine RSS (MiB)",
           title=f"{record['model']}: {summary['cycles']} load/unload cycles; retained "
                 f"{summary['retained_x_footprint']:.2f}x, growth "
                 f"{summary['growth_x_footprint']:+.2f}x one version")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def prepare(args: argparse.Namespace, workdir: Path) -> Path:
    """The churned model's base path: a zoo export (with warmup) or a weights model."""
    if args.model == "weights":
        return save_weights_model(workdir / CHURNED / "1", args.megabytes, args.chunk_kb).parent
    return export_zoo(args.model, args.models_dir or workdir / "models")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mobilenet_v2", help="a zoo name, or 'weights'")
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--megabytes", type=float, default=64, help="--model weights: size")
    parser.add_argument("--chunk-kb", type=int, default=128, help="--model weights: per variable")
    parser.add_argument("--engine-env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment of the engine (e.g. LD_PRELOAD=libjemalloc.so.2)")
    parser.add_argument("--models-dir", type=Path,
                        help="export zoo models into (and reuse them from) this directory")
    parser.add_argument("--at-start", action="store_true",
                        help="load the version at start-up and unload it before the cycles")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/churn"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.update(kv.split("=", 1) for kv in args.engine_env)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        churned = prepare(args, workdir)
        started = time.monotonic()
        result = run_churn(churned, workdir, args.cycles, at_start=args.at_start,
                           progress=print_cycle)
    record = {"model": args.model, "cycles": args.cycles, "engine_env": args.engine_env,
              "megabytes": args.megabytes if args.model == "weights" else None,
              "chunk_kb": args.chunk_kb if args.model == "weights" else None,
              "seconds": time.monotonic() - started, "machine": machine(), **asdict(result),
              "summary": result.summary()}
    write_json(args.out.with_suffix(".json"), record)
    plot(record, args.out.with_suffix(".png"))
    s = record["summary"]
    print(f"{args.model}: footprint {s['footprint_mb']:.1f} MiB; after {s['cycles']} cycles "
          f"retained {s['retained_mb']:.1f} MiB ({s['retained_x_footprint']:.2f}x), growth "
          f"over the cycles {s['growth_mb']:+.1f} MiB ({s['growth_x_footprint']:+.2f}x); wrote "
          f"{args.out.with_suffix('.json')}, {args.out.with_suffix('.png')}")
    if result.at_start:
        print(f"the version loaded at start-up: unloading it released "
              f"{result.at_start['released_mb']:.1f} MiB; later unloads released "
              f"{s['released_per_unload_mb']:.1f} MiB on average")
    return 0


if __name__ == "__main__":
    sys.exit(main())
