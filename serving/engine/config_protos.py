"""``BatchingParameters``, ``MonitoringConfig`` and ``SSLConfig``: the config messages that
tensorflow-serving-api does not ship, defined here with TensorFlow Serving's package, field names,
numbers and types (``servables/tensorflow/session_bundle_config.proto``,
``config/monitoring_config.proto``, ``config/ssl_config.proto``), so the same text files parse in
both engines.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,  # noqa: F401 - registers google/protobuf/wrappers.proto
)

FieldProto = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = FieldProto.LABEL_OPTIONAL, FieldProto.LABEL_REPEATED
_WRAPPER = {"int64": ".google.protobuf.Int64Value", "string": ".google.protobuf.StringValue",
            "bool": ".google.protobuf.BoolValue"}

BATCHING_FIELDS = (  # name, number, wrapper type (None: plain field)
    ("max_batch_size", 1, "int64"),
    ("batch_timeout_micros", 2, "int64"),
    ("max_enqueued_batches", 3, "int64"),
    ("num_batch_threads", 4, "int64"),
    ("thread_pool_name", 5, "string"),
    ("enable_large_batch_splitting", 8, "bool"),
    ("max_execution_batch_size", 9, "int64"),
)


def _file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="serving/engine/config_protos.proto", package="tensorflow.serving",
        syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    batching = file.message_type.add(name="BatchingParameters")
    for name, number, wrapper in BATCHING_FIELDS:
        batching.field.add(name=name, number=number, label=_OPTIONAL,
                           type=FieldProto.TYPE_MESSAGE, type_name=_WRAPPER[wrapper])
    batching.field.add(name="allowed_batch_sizes", number=6, label=_REPEATED,
                       type=FieldProto.TYPE_INT64)
    batching.field.add(name="pad_variable_length_inputs", number=7, label=_OPTIONAL,
                       type=FieldProto.TYPE_BOOL)
    prometheus = file.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, label=_OPTIONAL, type=FieldProto.TYPE_BOOL)
    prometheus.field.add(name="path", number=2, label=_OPTIONAL, type=FieldProto.TYPE_STRING)
    monitoring = file.message_type.add(name="MonitoringConfig")
    monitoring.field.add(name="prometheus_config", number=1, label=_OPTIONAL,
                         type=FieldProto.TYPE_MESSAGE,
                         type_name=".tensorflow.serving.PrometheusConfig")
    ssl = file.message_type.add(name="SSLConfig")
    for number, name in enumerate(("server_key", "server_cert", "custom_ca"), 1):
        ssl.field.add(name=name, number=number, label=_OPTIONAL, type=FieldProto.TYPE_STRING)
    ssl.field.add(name="client_verify", number=4, label=_OPTIONAL, type=FieldProto.TYPE_BOOL)
    return file


def _classes():
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName("serving/engine/config_protos.proto")
    except KeyError:
        pool.Add(_file())
    get = message_factory.GetMessageClass
    return tuple(get(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
                 for name in ("BatchingParameters", "MonitoringConfig", "SSLConfig"))


BatchingParameters, MonitoringConfig, SSLConfig = _classes()


class ConfigFileError(Exception):
    """A config file that does not parse; the message names the file and the reason."""


def read_text_proto(path: str | Path, message_class):
    """Parse a text-format file into ``message_class``.

    Raises:
        ConfigFileError: ``Error parsing text-format <full name>: <line:col: reason>``.
    """
    try:
        return text_format.Parse(Path(path).read_text(), message_class())
    except OSError as e:
        raise ConfigFileError(f"cannot read {path}: {e.strerror}") from None
    except text_format.ParseError as e:
        raise ConfigFileError(f"Error parsing text-format {message_class.DESCRIPTOR.full_name}: "
                              f"{e}") from None
