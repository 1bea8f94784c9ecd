"""Everything the engine starts from, read once at the command-line boundary: the flags and the
three text-proto files (models, batching, monitoring). A file that does not parse is one clear
line and a non-zero exit, never a half-configured server."""

from __future__ import annotations

import os
from dataclasses import dataclass

from tf_serving_platform.serving.engine import model_config, tls
from tf_serving_platform.serving.engine.batcher import BatchingOptions
from tf_serving_platform.serving.engine.config_protos import (
    BatchingParameters,
    ConfigFileError,
    MonitoringConfig,
    SSLConfig,
    read_text_proto,
)
from tf_serving_platform.serving.engine.options import ServerOptions

DEFAULT_METRICS_PATH = "/monitoring/prometheus/metrics"


class SettingsError(Exception):
    """A config file the server cannot start with (one line)."""


@dataclass(frozen=True)
class EngineSettings:
    options: ServerOptions
    """The tensorflow_model_server flags."""
    model_config: model_config.ModelServerConfig
    """The initial ModelServerConfig (config file or single-model flags)."""
    batching: BatchingOptions | None
    """Batching rules, or None when --enable_batching is off."""
    metrics_path: str | None
    """Where Prometheus metrics are served on the REST port, or None when disabled."""
    ssl: SSLConfig | None = None
    """TLS key pair (and CA for client verification), or None for plaintext."""


def _batching(options: ServerOptions) -> BatchingOptions | None:
    if not options.enable_batching:
        return None
    params = BatchingParameters()
    if options.batching_parameters_file:
        params = read_text_proto(options.batching_parameters_file, BatchingParameters)
    try:
        return BatchingOptions.from_proto(params, os.cpu_count() or 1)
    except ValueError as e:
        raise SettingsError(f"{options.batching_parameters_file}: {e}") from None


def _metrics_path(options: ServerOptions) -> str | None:
    if not options.monitoring_config_file:
        return None
    config = read_text_proto(options.monitoring_config_file, MonitoringConfig)
    prometheus = config.prometheus_config
    return (prometheus.path or DEFAULT_METRICS_PATH) if prometheus.enable else None


def load(options: ServerOptions) -> EngineSettings:
    """Read and check every file the flags name.

    Raises:
        SettingsError: with the parser's reason, e.g. ``Error parsing text-format
            tensorflow.serving.ModelServerConfig: 1:5 : ...``.
    """
    try:
        ssl = read_text_proto(options.ssl_config_file, SSLConfig) \
            if options.ssl_config_file else None
        if ssl:
            tls.check_validity(ssl)
        return EngineSettings(options, options.initial_config(), _batching(options),
                              _metrics_path(options), ssl)
    except (ConfigFileError, model_config.ConfigParseError, tls.CertificateError) as e:
        raise SettingsError(str(e)) from None
