"""Warmup records: ``assets.extra/tf_serving_warmup_requests``, replayed by the server on load.

The file is a TFRecord of ``tensorflow.serving.PredictionLog`` (``g3doc/saved_model_warmup.md``).
Records are real held-out inputs at several batch sizes, so the first user request does not pay
for graph tracing or kernel selection at any of those sizes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
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

from tf_serving_platform.export.examples import to_examples
from tf_serving_platform.export.signatures import CLASSIFY_KEY, PREDICT_KEY, REGRESS_KEY
from tf_serving_platform.serving.engine import warmup as engine_warmup

WARMUP_FILE = engine_warmup.WARMUP_PATH
BATCH_SIZES = (1, 2, 4, 8)
MAX_RECORDS = engine_warmup.MAX_RECORDS  # TensorFlow Serving refuses more (kMaxNumRecords)


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
    return _write(export_dir, logs)


def _write(export_dir: Path, logs: list[prediction_log_pb2.PredictionLog]) -> int:
    path = Path(export_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs[:MAX_RECORDS]:
            writer.write(log.SerializeToString())
    return min(len(logs), MAX_RECORDS)


def _batch_size(log: prediction_log_pb2.PredictionLog) -> int:
    """Rows of a logged request: the first input's first dimension, or its example count."""
    kind = log.WhichOneof("log_type")
    request = getattr(log, kind).request
    if kind == "predict_log":
        first = min(request.inputs) if request.inputs else None
        dims = request.inputs[first].tensor_shape.dim if first else ()
        return dims[0].size if dims else 1
    listed = request.input.example_list_with_context if request.input.HasField(
        "example_list_with_context") else request.input.example_list
    return len(listed.examples)


def _signatures(log: prediction_log_pb2.PredictionLog) -> list[str]:
    request = getattr(log, log.WhichOneof("log_type")).request
    specs = [t.model_spec for t in request.tasks] if hasattr(request, "tasks") else \
        [request.model_spec]
    return [s.signature_name or PREDICT_KEY for s in specs]


def from_logs(logs: Iterable[prediction_log_pb2.PredictionLog], model_name: str,
              signatures: list[str], per_shape: int = 2) -> list[prediction_log_pb2.PredictionLog]:
    """Warmup records from a request log: the first ``per_shape`` logged requests of each
    (call, signature, batch size), so real traffic's spread of sizes and signatures is warmed.

    Only requests whose every signature the export has are kept (a record that fails at load
    fails the load, in TensorFlow Serving as here); each is stripped to its request (warmup
    ignores responses and metadata) and aimed at ``model_name`` with no version or label, which
    a new version would not match."""
    kept, seen = [], Counter()
    for log in logs:
        kind = log.WhichOneof("log_type")
        if kind not in engine_warmup.SUPPORTED:
            continue
        called = tuple(_signatures(log))
        if not all(s in signatures for s in called):
            continue
        shape = (kind, called, _batch_size(log))
        if seen[shape] >= per_shape:
            continue
        seen[shape] += 1
        request = getattr(log, kind).request
        record = prediction_log_pb2.PredictionLog()
        getattr(record, kind).request.CopyFrom(request)
        specs = [t.model_spec for t in getattr(record, kind).request.tasks] if \
            kind == "multi_inference_log" else [getattr(record, kind).request.model_spec]
        for spec in specs:
            spec.name = model_name
            spec.ClearField("version_choice")
        kept.append(record)
    return kept[:MAX_RECORDS]


def write_logged(export_dir: Path, model_name: str,
                 logs: Iterable[prediction_log_pb2.PredictionLog], signatures: list[str]) -> int:
    """Write :func:`from_logs`'s records as the warmup file; return the record count.

    Raises:
        ValueError: the log holds no request for any of ``signatures``.
    """
    records = from_logs(logs, model_name, signatures)
    if not records:
        raise ValueError(f"the request log holds no request for a signature of {model_name} "
                         f"({', '.join(signatures)})")
    return _write(export_dir, records)


def read_warmup(export_dir: Path) -> list[prediction_log_pb2.PredictionLog]:
    """Parse the warmup file of a version directory (empty list when there is none)."""
    path = Path(export_dir) / WARMUP_FILE
    if not path.exists():
        return []
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(str(path))]
