"""Warmup records: ``assets.extra/tf_serving_warmup_requests``, replayed by the server on load.

The file is a TFRecord of ``tensorflow.serving.PredictionLog`` (``g3doc/saved_model_warmup.md``).
Records are real held-out inputs at several batch sizes, so the first user request does not pay
for graph tracing or kernel selection at any of those sizes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)

from export.examples import to_examples
from export.signatures import CLASSIFY_KEY, PREDICT_KEY, REGRESS_KEY

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
BATCH_SIZES = (1, 2, 4, 8)
MAX_RECORDS = 1000  # TensorFlow Serving refuses files with more (kMaxNumRecords)


def _rows(inputs: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    return {k: np.asarray(v[:n]) for k, v in inputs.items()}


def _predict_log(spec: model_pb2.ModelSpec, inputs: Mapping[str, np.ndarray]):
    request = predict_pb2.PredictRequest(model_spec=spec)
    for name, values in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(
        request=request))


def _example_input(inputs: Mapping[str, np.ndarray]) -> input_pb2.Input:
    return input_pb2.Input(example_list=input_pb2.ExampleList(examples=to_examples(inputs)))


def _classify_log(spec, inputs):
    request = classification_pb2.ClassificationRequest(model_spec=spec,
                                                       input=_example_input(inputs))
    return prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(
        request=request))


def _regress_log(spec, inputs):
    request = regression_pb2.RegressionRequest(model_spec=spec, input=_example_input(inputs))
    return prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(
        request=request))


_LOG_BUILDERS = {PREDICT_KEY: _predict_log, CLASSIFY_KEY: _classify_log,
                 REGRESS_KEY: _regress_log}


def write_warmup(export_dir: Path, model_name: str, inputs: Mapping[str, np.ndarray],
                 signatures: list[str]) -> int:
    """Write warmup records for each signature at each batch size; return the record count."""
    available = len(next(iter(inputs.values())))
    sizes = sorted({min(b, available) for b in BATCH_SIZES})
    logs = [_LOG_BUILDERS[sig](model_pb2.ModelSpec(name=model_name, signature_name=sig),
                               _rows(inputs, n))
            for sig in signatures if sig in _LOG_BUILDERS for n in sizes]
    path = Path(export_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs[:MAX_RECORDS]:
            writer.write(log.SerializeToString())
    return min(len(logs), MAX_RECORDS)


def read_warmup(export_dir: Path) -> list[prediction_log_pb2.PredictionLog]:
    """Parse the warmup file of a version directory (empty list when there is none)."""
    path = Path(export_dir) / WARMUP_FILE
    if not path.exists():
        return []
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(str(path))]
