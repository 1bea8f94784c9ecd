"""Loading one version: the right runtime for its files, then warmup, before it may serve."""

from __future__ import annotations

import time
from pathlib import Path

import tensorflow as tf

from tf_serving_platform.serving import logger
from tf_serving_platform.serving.engine import inference, warmup
from tf_serving_platform.serving.engine.manager import Loader
from tf_serving_platform.serving.engine.metrics import Metrics
from tf_serving_platform.serving.engine.options import ServerOptions
from tf_serving_platform.serving.engine.servable import (
    TFLITE_FILE,
    Servable,
    load_saved_model,
    load_tflite,
)
from tf_serving_platform.serving.errors import ServingError

log = logger(__name__)


def session_config(options: ServerOptions) -> tf.compat.v1.ConfigProto:
    """Thread settings for TF1-session servables, from the parallelism flags."""
    intra, inter = options.parallelism()
    return tf.compat.v1.ConfigProto(intra_op_parallelism_threads=intra,
                                    inter_op_parallelism_threads=inter)


def make_loader(options: ServerOptions, metrics: Metrics) -> Loader:
    """A loader for the manager: SavedModel or (``--prefer_tflite_model``) TFLite, warmed up,
    with TensorFlow's load and warmup metrics recorded."""
    config = session_config(options)

    def load(name: str, version: int, path: Path) -> Servable:
        started = time.monotonic()
        try:
            if options.prefer_tflite_model and (path / TFLITE_FILE).exists():
                servable = load_tflite(name, version, path, options.num_tflite_pools
                                       * options.num_tflite_interpreters_per_pool)
            else:
                servable = load_saved_model(name, version, path, options.tags, config)
        except Exception:
            metrics.load_attempts.labels(str(path), "fail").inc()
            raise
        metrics.load_attempts.labels(str(path), "success").inc()
        metrics.load_latency.labels(str(path)).inc((time.monotonic() - started) * 1e6)
        if options.enable_model_warmup:
            _warm_up(servable, path, options.num_request_iterations_for_warmup, metrics)
        return servable
    return load


def _warm_up(servable: Servable, path: Path, iterations: int, metrics: Metrics) -> None:
    started = time.monotonic()
    status = "OK"
    records = []
    try:
        records = warmup.read_records(path)
        warmup.replay(servable, records, inference.replay_record, iterations)
    except ServingError as e:
        status = e.code.name
        raise
    finally:
        if records or status != "OK":
            metrics.warmup_latency.labels(str(path), status).observe(
                (time.monotonic() - started) * 1e6)
            metrics.warmup_records.labels(str(path), status).inc(len(records))
    if records:
        log.info("%s version %s: replayed %d warmup records in %.2fs", servable.name,
                 servable.version, len(records), time.monotonic() - started,
                 extra={"model": servable.name, "version": servable.version})
