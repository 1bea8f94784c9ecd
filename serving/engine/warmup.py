"""Replaying ``assets.extra/tf_serving_warmup_requests`` before a version serves traffic.

Follows ``servables/tensorflow/saved_model_warmup_util.cc``: a TFRecord of ``PredictionLog``;
predict, classify, regress and multi-inference logs are replayed (``num_request_iterations``
times each), other kinds are UNIMPLEMENTED, more than 1000 records is INVALID_ARGUMENT, and any
error fails the load of that version.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tf_serving_platform.serving.engine.servable import op_error_message
from tf_serving_platform.serving.errors import ServingError, invalid_argument

WARMUP_PATH = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_RECORDS = 1000

Replay = Callable[[object, prediction_log_pb2.PredictionLog], None]
SUPPORTED = ("predict_log", "classify_log", "regress_log", "multi_inference_log")


def read_records(version_dir: Path) -> list[prediction_log_pb2.PredictionLog]:
    """The warmup records of a version (empty when it has none)."""
    path = version_dir / WARMUP_PATH
    if not path.exists():
        return []
    records = []
    try:
        for raw in tf.data.TFRecordDataset(str(path)):
            if len(records) == MAX_RECORDS:
                raise invalid_argument(f"Number of warmup records exceeds the maximum "
                                       f"({MAX_RECORDS}) at {path}")
            records.append(prediction_log_pb2.PredictionLog.FromString(raw.numpy()))
    except tf.errors.OpError as e:
        raise ServingError(grpc.StatusCode.DATA_LOSS, f"{op_error_message(e.message)}. Please "
                           "verify your warmup data is in TFRecord format.") from None
    except ValueError as e:  # protobuf DecodeError
        raise invalid_argument(f"Failed to parse warmup record: {e}") from None
    return records


def replay(servable, records: list[prediction_log_pb2.PredictionLog], replay_one: Replay,
           iterations: int = 1) -> None:
    """Run every record ``iterations`` times against ``servable`` through ``replay_one``."""
    for record in records:
        kind = record.WhichOneof("log_type")
        if kind not in SUPPORTED:
            raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                               f"Unsupported log_type for warmup: {kind}")
        for _ in range(max(iterations, 1)):
            replay_one(servable, record)
