"""Loading one version: the right runtime for its files, then warmup, before it may serve."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import tensorflow as tf

from serving.engine import inference, warmup
from serving.engine.manager import Loader
from serving.engine.options import ServerOptions
from serving.engine.servable import TFLITE_FILE, Servable, load_saved_model, load_tflite

log = logging.getLogger(__name__)


def session_config(options: ServerOptions) -> tf.compat.v1.ConfigProto:
    """Thread settings for TF1-session servables, from the parallelism flags."""
    intra = options.tensorflow_intra_op_parallelism or options.tensorflow_session_parallelism
    inter = options.tensorflow_inter_op_parallelism or options.tensorflow_session_parallelism
    return tf.compat.v1.ConfigProto(intra_op_parallelism_threads=intra,
                                    inter_op_parallelism_threads=inter)


def make_loader(options: ServerOptions) -> Loader:
    """A loader for the manager: SavedModel or (``--prefer_tflite_model``) TFLite, warmed up."""
    config = session_config(options)

    def load(name: str, version: int, path: Path) -> Servable:
        if options.prefer_tflite_model and (path / TFLITE_FILE).exists():
            servable = load_tflite(name, version, path)
        else:
            servable = load_saved_model(name, version, path, options.tags, config)
        if options.enable_model_warmup:
            started = time.monotonic()
            records = warmup.read_records(path)
            warmup.replay(servable, records, inference.replay_record,
                          options.num_request_iterations_for_warmup)
            if records:
                log.info("%s version %s: replayed %d warmup records in %.2fs", name, version,
                         len(records), time.monotonic() - started)
        return servable
    return load
