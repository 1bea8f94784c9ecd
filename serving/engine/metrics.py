"""Prometheus metrics, defined once, with TensorFlow Serving's names, labels and buckets.

Names and bucket layouts follow TensorFlow Serving's ``util/prometheus_exporter.cc`` and the
sites that record them (``servables/tensorflow/util.cc``, ``batching/batching_session.cc``, TF
core's SavedModel loader). The page is rendered the way TensorFlow Serving renders it: ``# TYPE``
lines only, counters without prometheus-client's ``_total`` suffix, no ``_created`` series.

Beyond TensorFlow Serving (prefix ``:platform:``): latency per signature and version, requests in
flight (the autoscaling signal), batch queue depth, versions loaded per model, requests whose
caller went away (by reason and stage), the memory held by requests in flight and the requests
it refused, REST connections refused at their limit, the watchdog's stalls
(``serving/engine/watchdog.py``), and request log records written or dropped
(``serving/engine/request_log.py``).

One :class:`Metrics` object per server, on its own registry, so tests get a fresh one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from tf_serving_platform.serving.errors import ServingError

disable_created_metrics()

TF = ":tensorflow:serving:"
OURS = ":platform:"


def exponential(scale: float, growth: float, count: int) -> list[float]:
    """TF's ``Buckets::Exponential``: ``scale * growth^i`` for ``i < count``."""
    return [scale * growth**i for i in range(count)]


LATENCY_BUCKETS = exponential(10, 1.8, 33)          # microseconds
QUEUEING_BUCKETS = exponential(100, 1.2, 52)        # microseconds
BATCH_SIZE_BUCKETS = exponential(1, 2, 14)


UNKNOWN_MODEL = "(unknown)"
"""The ``model_name`` of requests for a model the config does not name."""


class Metrics:
    """Every metric of the engine, on one registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.request_count = Counter(f"{TF}request_count", "", ["model_name", "status"],
                                     registry=r)
        self.request_latency = Histogram(f"{TF}request_latency", "",
                                         ["model_name", "API", "entrypoint"],
                                         buckets=LATENCY_BUCKETS, registry=r)
        self.runtime_latency = Histogram(f"{TF}runtime_latency", "",
                                         ["model_name", "API", "runtime"],
                                         buckets=LATENCY_BUCKETS, registry=r)
        self.warmup_latency = Histogram(f"{TF}model_warmup_latency", "",
                                        ["model_path", "status"], buckets=LATENCY_BUCKETS,
                                        registry=r)
        self.warmup_records = Counter(f"{TF}model_warmup_records_read", "",
                                      ["model_path", "status"], registry=r)
        self.load_attempts = Counter(":tensorflow:cc:saved_model:load_attempt_count", "",
                                     ["model_path", "status"], registry=r)
        self.load_latency = Counter(":tensorflow:cc:saved_model:load_latency", "",
                                    ["model_path"], registry=r)
        batching = f"{TF}batching_session:"
        self.queuing_latency = Histogram(f"{batching}queuing_latency", "", ["thread_pool_name"],
                                         buckets=QUEUEING_BUCKETS, registry=r)
        self.wrapped_run_count = Counter(f"{batching}wrapped_run_count", "", registry=r)
        self.input_batch_size = Histogram(f"{batching}input_batch_size", "",
                                          buckets=BATCH_SIZE_BUCKETS, registry=r)
        self.processed_batch_size = Histogram(f"{batching}processed_batch_size", "",
                                              buckets=BATCH_SIZE_BUCKETS, registry=r)
        self.padding_size = Histogram(f"{batching}padding_size", "", ["execution_batch_size"],
                                      buckets=BATCH_SIZE_BUCKETS, registry=r)
        self.signature_latency = Histogram(
            f"{OURS}request_latency", "", ["model_name", "version", "signature_name", "API",
                                           "entrypoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge(f"{OURS}requests_in_flight", "", ["entrypoint"], registry=r)
        self.queue_depth = Gauge(f"{OURS}batch_queue_depth", "", registry=r)
        self.versions_loaded = Gauge(f"{OURS}versions_loaded", "", ["model_name"], registry=r)
        self.base_path_errors = Counter(f"{OURS}base_path_errors", "", ["model_name"],
                                        registry=r)
        self.config_reload_errors = Counter(f"{OURS}config_reload_errors", "", registry=r)
        self.abandoned = Counter(f"{OURS}requests_abandoned", "", ["reason", "stage"],
                                 registry=r)
        """Requests whose caller went away (``reason``: cancelled, deadline); ``stage`` queued:
        dropped before it was computed; running: computed, the answer discarded."""
        self.request_memory = Gauge(f"{OURS}request_memory_bytes", "", registry=r)
        """Memory reserved by the requests in flight (serving/engine/request_memory.py)."""
        self.request_memory_refused = Counter(f"{OURS}request_memory_refused", "",
                                              registry=r)
        """Requests refused RESOURCE_EXHAUSTED because the budget could not hold them."""
        self.rest_connections_refused = Counter(f"{OURS}rest_connections_refused", "",
                                                registry=r)
        """REST connections answered 503 at ``--rest_api_max_connections``."""
        self.request_log_records = Counter(f"{OURS}request_log_records", "",
                                           ["model_name", "outcome"], registry=r)
        self.stalled = Gauge(f"{OURS}stalled", "", ["component"], registry=r)
        self.stalls = Counter(f"{OURS}stalls", "", ["component"], registry=r)
        self.is_known_model: Callable[[str], bool] = lambda name: True
        """Whether a request's model name may be a label value (set to the config's names):
        names as typed by clients would grow every series without bound."""
        self.refreshers: list[Callable[[], None]] = []
        """Called before each render, to set gauges read from elsewhere (manager, batcher)."""
        self.gatherers: list[Callable[[], Awaitable[None]]] = []
        """Awaited before each page: what other processes (the front ends) recorded so far."""

    @asynccontextmanager
    async def request(self, model_name: str, api: str, entrypoint: str
                      ) -> AsyncIterator[dict]:
        """Count one request and, when it succeeds, its latency (TF Serving's rule).

        The body may set ``served["version"]``/``served["signature"]`` for the per-signature
        latency.
        """
        started = time.perf_counter()
        served: dict = {}
        if not self.is_known_model(model_name):
            model_name = UNKNOWN_MODEL
        self.in_flight.labels(entrypoint).inc()
        try:
            yield served
        except ServingError as e:
            self.request_count.labels(model_name, e.code.name).inc()
            raise
        except asyncio.CancelledError:  # the caller went away
            self.request_count.labels(model_name, grpc.StatusCode.CANCELLED.name).inc()
            raise
        except Exception:
            self.request_count.labels(model_name, grpc.StatusCode.INTERNAL.name).inc()
            raise
        else:
            micros = (time.perf_counter() - started) * 1e6
            self.request_count.labels(model_name, "OK").inc()
            self.request_latency.labels(model_name, api, entrypoint).observe(micros)
            if served:
                self.signature_latency.labels(model_name, str(served["version"]),
                                              served["signature"], api,
                                              entrypoint).observe(micros)
        finally:
            self.in_flight.labels(entrypoint).dec()

    def timed_run(self, model_name: str, api: str, runtime: str, run: Callable, *args):
        """Call ``run(*args)`` and record it as runtime latency."""
        started = time.perf_counter()
        result = run(*args)
        self.runtime_latency.labels(model_name, api, runtime).observe(
            (time.perf_counter() - started) * 1e6)
        return result

    def render(self) -> bytes:
        """The exposition page, in TensorFlow Serving's layout."""
        for refresh in self.refreshers:
            refresh()
        lines = []
        for family in sorted(self.registry.collect(), key=lambda f: f.name):
            name = family.name
            lines.append(f"# TYPE {name} {family.type}")
            for sample in family.samples:
                sample_name = name if family.type == "counter" else sample.name
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sample.labels.items())
                lines.append(f"{sample_name}{{{labels}}} {_number(sample.value)}")
        return ("\n".join(lines) + "\n").encode()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)
