"""A closed-loop load generator for TensorFlow Serving's gRPC and REST APIs.

Several worker processes (so the generator is not one Python core), each running asyncio
workers that send a pre-encoded request back to back: gRPC through a raw-bytes unary call (no
per-request protobuf work), REST through one keep-alive aiohttp session. Each process keeps raw
latency samples (sub-millisecond precision) and reports its own CPU time, so the caller can tell
whether the generator itself was the bottleneck.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass

import numpy as np

from tf_serving_platform.loadtest.signature import PREDICT_METHOD

JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Endpoint:
    """Where and what to send: ``protocol`` is ``grpc`` (host:port) or ``rest`` (URL)."""

    protocol: str
    address: str
    payload: bytes
    method: str = PREDICT_METHOD
    """The gRPC method called."""
    headers: dict | None = None
    """More REST headers (the Open Inference Protocol's binary data needs one)."""


def predict_path(model: str) -> str:
    """The REST predict path of ``model`` (``serving.client.ModelRef``: names percent-encoded)."""
    from tf_serving_platform.serving.client import ModelRef

    return ModelRef(model).rest_path(":predict")


@dataclass
class LevelResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: np.ndarray
    generator_cpu: float
    """Generator CPU seconds per wall second (1.0 = one core busy)."""

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else \
            float("nan")


async def _grpc_worker(target: Endpoint, stop_at: float, latencies: list, errors: list) -> None:
    import grpc

    async with grpc.aio.insecure_channel(target.address) as channel:
        call = channel.unary_unary(target.method, request_serializer=None,
                                   response_deserializer=None)
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                await call(target.payload, timeout=30)
                latencies.append(time.perf_counter() - started)
            except grpc.RpcError:
                errors.append(1)


async def _rest_worker(target: Endpoint, stop_at: float, latencies: list, errors: list,
                       session) -> None:
    headers = {**JSON, **(target.headers or {})}
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        try:
            async with session.post(target.address, data=target.payload,
                                    headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors.append(1)
                    continue
            latencies.append(time.perf_counter() - started)
        except Exception:  # noqa: BLE001 - connection errors count as errors
            errors.append(1)


async def _process_main(target: Endpoint, concurrency: int, warmup_s: float,
                        duration_s: float) -> tuple[list, int, float]:
    import aiohttp

    latencies: list = []
    errors: list = []
    start = time.monotonic()
    stop_at = start + warmup_s + duration_s
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        if target.protocol == "grpc":
            workers = [_grpc_worker(target, stop_at, latencies, errors)
                       for _ in range(concurrency)]
        else:
            workers = [_rest_worker(target, stop_at, latencies, errors, session)
                       for _ in range(concurrency)]
        cpu_started = time.process_time()
        await asyncio.gather(*workers)
        cpu = time.process_time() - cpu_started
    return latencies, len(errors), cpu


def _run_process(target: Endpoint, concurrency: int, warmup_s: float, duration_s: float,
                 results: multiprocessing.Queue) -> None:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        latencies, errors, cpu = runner.run(_process_main(target, concurrency, warmup_s,
                                                          duration_s))
    # Drop the warm-up share of samples: the first requests pay for connection setup.
    skip = int(len(latencies) * warmup_s / (warmup_s + duration_s))
    results.put((latencies[skip:], errors, cpu))


def run_level(target: Endpoint, concurrency: int, duration_s: float = 5.0,
              processes: int = 2, warmup_s: float = 1.0) -> LevelResult:
    """Hold ``concurrency`` requests in flight for ``duration_s`` seconds and measure."""
    processes = max(1, min(processes, concurrency))
    shares = [concurrency // processes + (i < concurrency % processes)
              for i in range(processes)]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_run_process,
                               args=(target, share, warmup_s, duration_s, results))
               for share in shares]
    for worker in workers:
        worker.start()
    collected = [results.get(timeout=duration_s + warmup_s + 120) for _ in workers]
    for worker in workers:
        worker.join()
    latencies = np.array([x for c in collected for x in c[0]]) * 1000
    cpu = sum(c[2] for c in collected) / (duration_s + warmup_s)
    return LevelResult(concurrency, len(latencies), sum(c[1] for c in collected), duration_s,
                       latencies, cpu)
