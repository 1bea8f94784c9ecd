"""``tensorflow_model_server``'s flags, with the same names, syntax and defaults, as one object.

``parse_flags`` builds a frozen :class:`ServerOptions` once, at the command-line boundary; the
rest of the engine receives it explicitly. Flags accept ``--name=value`` and ``--name value``;
booleans also accept a bare ``--name`` (``model_servers/main.cc``, TensorFlow's flag parser).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import inspect
import os
import textwrap
from dataclasses import dataclass, fields

from tf_serving_platform.serving.engine import log_format, model_config, tracing

TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes"), ("false", "0", "no")


class FlagError(Exception):
    """A flag value or combination the server cannot start with (one line)."""


def _bool(text: str) -> bool:
    if text.lower() in TRUE_WORDS:
        return True
    if text.lower() in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


@dataclass(frozen=True)
class ServerOptions:
    """Everything the engine is configured with (TF Serving's ``Server::Options``)."""

    port: int = 8500
    """gRPC TCP port; 0 disables TCP gRPC."""
    grpc_socket_path: str = ""
    """Also serve gRPC on this Unix socket."""
    rest_api_port: int = 0
    """HTTP/REST port; 0 (the default) disables REST."""
    rest_api_timeout_in_ms: int = 30000
    """Deadline of each REST request; DEADLINE_EXCEEDED (504) after it."""
    rest_api_enable_cors_support: bool = False
    """Add CORS headers to REST responses."""
    rest_api_max_body_bytes: int = 1 << 30
    """Largest REST request body (after gunzip); larger gets 413 before it is read or parsed,
    as does one larger than the request memory budget could parse (not a TF Serving flag)."""
    rest_api_idle_timeout_seconds: float = 30.0
    """A REST connection must send a request's headers within this time of opening (or of its
    previous answer), and may pause its body or a TLS handshake no longer (not a TF Serving
    flag)."""
    rest_api_max_connections: int = 0
    """Open REST connections; one more is answered 503 and closed. 0: three quarters of the
    open-file limit; split between the front-end processes (not a TF Serving flag)."""
    request_memory_budget_bytes: int = 0
    """Memory the requests in flight may reserve for their tensors (a REST body reserves 40x
    its size); past it RESOURCE_EXHAUSTED / 429. 0: a quarter of the memory the process may
    use (its cgroup limit or the machine's); negative: no budget (not a TF Serving flag)."""
    model_name: str = "default"
    """Single-model mode: the model's name."""
    model_base_path: str = ""
    """Single-model mode: the model's base path (without the version directory)."""
    model_config_file: str = ""
    """Text-format ModelServerConfig; overrides --model_name/--model_base_path."""
    model_config_file_poll_wait_seconds: int = 0
    """Re-read the config file every N seconds; 0 reads it once."""
    file_system_poll_wait_seconds: int = 1
    """How often base paths are listed for new versions; 0 = once, negative = never."""
    enable_batching: bool = False
    """Merge concurrent requests into batches."""
    batching_parameters_file: str = ""
    """Text-format BatchingParameters."""
    monitoring_config_file: str = ""
    """Text-format MonitoringConfig (Prometheus endpoint on the REST port)."""
    allow_version_labels_for_unavailable_models: bool = False
    """Let a new label point at a version that is not loaded yet."""
    prefer_tflite_model: bool = False
    """Serve model.tflite from a version directory when it has one."""
    num_tflite_interpreters_per_pool: int = 1
    """TFLite interpreters per pool: how many requests one TFLite version runs at once."""
    num_tflite_pools: int = 1
    """TFLite interpreter pools (the engine multiplies both into one pool of interpreters)."""
    enable_signature_method_name_check: bool = False
    """Refuse Classify/Regress (and Predict) on a signature whose method_name is not theirs."""
    grpc_channel_arguments: str = ""
    """gRPC server arguments, ``key=value,key=value``."""
    enable_model_warmup: bool = True
    """Replay assets.extra/tf_serving_warmup_requests before a version becomes AVAILABLE."""
    num_request_iterations_for_warmup: int = 0
    """Replays per warmup record (0 means 1)."""
    tensorflow_session_parallelism: int = 0
    """Both intra- and inter-op threads (0 = TensorFlow's choice)."""
    tensorflow_intra_op_parallelism: int = 0
    """Threads inside one op (0 = TensorFlow's choice)."""
    tensorflow_inter_op_parallelism: int = 0
    """Ops run in parallel (0 = TensorFlow's choice)."""
    saved_model_tags: str = "serve"
    """Comma-separated MetaGraph tags to load."""
    max_num_load_retries: int = 5
    """Retries after a failed load."""
    load_retry_interval_micros: int = 60_000_000
    """Delay between load retries."""
    load_timeout_seconds: float = 600.0
    """A version whose load takes longer fails that attempt (DEADLINE_EXCEEDED; retried as any
    failed load): a read that hangs holds only its own version; 0: no limit (not a TF Serving
    flag)."""
    ssl_config_file: str = ""
    """Text-format SSLConfig (PEM key, cert, optional CA and client_verify) for gRPC."""
    rest_api_enable_ssl: bool = False
    """Serve REST over TLS too, with the --ssl_config_file key pair (not a TF Serving flag)."""
    admin_token_file: str = ""
    """A file holding a token: ModelService's HandleReloadConfigRequest then requires gRPC
    metadata ``authorization: Bearer <token>`` (read at each call, so a rotated Secret applies
    at once); without it anyone who reaches the gRPC port may reload, as in TF Serving (not a
    TF Serving flag)."""
    model_base_path_roots: str = ""
    """Comma-separated directories (or URI prefixes): every config, reloaded or polled, may
    only name base paths under them; empty: anywhere, as TF Serving (not a TF Serving flag)."""
    admin_address: str = ""
    """host:port for /healthz, /readyz and metrics, instead of the REST port (not a TF Serving
    flag)."""
    stall_timeout_seconds: float = 60.0
    """Liveness and readiness fail when a model run lasts longer, or queued work sees no batch
    run for longer (serving/engine/watchdog.py); 0 turns the watchdog off (not a TF Serving
    flag)."""
    grace_period_seconds: float = 30.0
    """On SIGTERM: how long requests in flight may take to finish (not a TF Serving flag)."""
    enable_v2_protocol: bool = False
    """Also serve the Open Inference Protocol (KServe V2): /v2 on the REST port and
    inference.GRPCInferenceService on the gRPC port (not a TF Serving flag)."""
    tracing_otlp_endpoint: str = ""
    """OpenTelemetry: export spans over OTLP/gRPC to host:port (http://, or https:// for TLS);
    empty: the standard OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT variables, or off (not a TF
    Serving flag)."""
    log_format: str = "text"
    """``text`` or ``json`` (one object per line: time, level, logger, message, and model,
    version and request id where they apply) (not a TF Serving flag)."""
    host: str = "0.0.0.0"
    """Address both front ends bind to (not a TF Serving flag)."""
    workers: int = 1
    """Whole engines (each with its own copy of the models) sharing the ports through
    SO_REUSEPORT (not a TF Serving flag)."""
    frontend_processes: int = 0
    """Processes parsing HTTP, JSON and protobuf, sharing the ports through SO_REUSEPORT, over
    one copy of the models and one batch scheduler; 0: one per usable CPU (its affinity and
    cgroup quota), 1: one process does all (not a TF Serving flag)."""

    # tensorflow_model_server flags accepted so that its command lines run unchanged, without
    # effect in the embedded engine (set to anything but the default, each logs one warning).
    rest_api_num_threads: int = 0
    """No effect here: REST runs on each worker's event loop (TF default: 4 x CPUs)."""
    grpc_max_threads: int = 0
    """No effect here: gRPC runs on each worker's event loop (TF default: 4 x CPUs)."""
    enable_profiler: bool = True
    """No effect here: TensorFlow's profiler service is not served (README, compatibility)."""
    enable_grpc_healthcheck_service: bool = False
    """No effect here: grpc.health.v1 is always served."""
    enable_serialization_as_tensor_content: bool = False
    """No effect here: Predict responses carry typed value fields, TF Serving's default."""
    enable_per_model_batching_parameters: bool = False
    """No effect here: one batching config for every model."""
    num_load_threads: int = 0
    """No effect here: each load runs on a thread of its own."""
    num_unload_threads: int = 0
    """No effect here: versions unload one at a time."""
    flush_filesystem_caches: bool = True
    """No effect here."""
    remove_unused_fields_from_bundle_metagraph: bool = True
    """No effect here."""
    per_process_gpu_memory_fraction: float = 0.0
    """No effect here: the embedded engine runs on CPU."""
    platform_config_file: str = ""
    """No effect here: SavedModel and TFLite are the platforms served."""
    tensorflow_session_config_file: str = ""
    """No effect here: use the parallelism flags."""
    thread_pool_factory_config_file: str = ""
    """No effect here."""
    mixed_precision: str = ""
    """No effect here."""
    xla_cpu_compilation_enabled: bool = False
    """No effect here."""
    xla_gpu_compilation_enabled: bool = False
    """No effect here."""
    use_alts_credentials: bool = False
    """No effect here: use --ssl_config_file."""
    skip_initialize_tpu: bool = True
    """No effect here."""

    def parallelism(self) -> tuple[int, int]:
        """TensorFlow's (intra-op, inter-op) thread counts; 0 leaves TensorFlow's default.
        Each ``--tensorflow_*_op_parallelism`` falls back to ``--tensorflow_session_parallelism``
        as in TensorFlow Serving."""
        session = self.tensorflow_session_parallelism
        return (self.tensorflow_intra_op_parallelism or session,
                self.tensorflow_inter_op_parallelism or session)

    def ineffective_flags(self) -> list[str]:
        """The accepted-for-compatibility flags this command line set to a non-default value."""
        docs = _attribute_docs(ServerOptions)
        return [f"--{f.name}" for f in fields(self) if docs.get(f.name, "").startswith(
            "No effect here") and getattr(self, f.name) != f.default]

    @staticmethod
    def embedded_only_flags() -> tuple[str, ...]:
        """The flags ``tensorflow_model_server`` does not have (documented as such)."""
        docs = _attribute_docs(ServerOptions)
        return tuple(f"--{name}" for name, doc in docs.items()
                     if "(not a TF Serving flag)" in " ".join(doc.split()))

    @property
    def base_path_roots(self) -> tuple[str, ...]:
        return tuple(r.strip() for r in self.model_base_path_roots.split(",") if r.strip())

    @property
    def tags(self) -> set[str]:
        return {t.strip() for t in self.saved_model_tags.split(",") if t.strip()}

    def initial_config(self) -> model_config.ModelServerConfig:
        """The ModelServerConfig to start with: the config file, or the single-model flags."""
        if self.model_config_file:
            return model_config.read_file(self.model_config_file)
        return model_config.single_model(self.model_name, self.model_base_path)


def _attribute_docs(cls: type) -> dict[str, str]:
    """The one-line docstrings under each field, for ``--help``."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    return {a.target.id: b.value.value for a, b in zip(body, body[1:], strict=False)
            if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr)
            and isinstance(b.value, ast.Constant)}


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Declare every :class:`ServerOptions` field as a ``--flag`` with its default."""
    docs = _attribute_docs(ServerOptions)
    for field in fields(ServerOptions):
        kind = {"bool": _bool, "int": int, "float": float}.get(str(field.type), str)
        extra = {"nargs": "?", "const": True} if kind is _bool else {}
        parser.add_argument(f"--{field.name}", type=kind, default=field.default,
                            metavar=str(field.type).upper(),
                            help=f"{docs.get(field.name, '')} (default: {field.default!r})",
                            **extra)


def options_from_args(args: argparse.Namespace) -> ServerOptions:
    """Build and check :class:`ServerOptions` from parsed flags.

    Raises:
        FlagError: an impossible combination, with TensorFlow Serving's wording where it has one.
    """
    options = ServerOptions(**{f.name: getattr(args, f.name) for f in fields(ServerOptions)})
    if options.batching_parameters_file and not options.enable_batching:
        raise FlagError("server_options.batching_parameters_file is set without setting "
                        "server_options.enable_batching to true.")
    if not options.model_config_file and not options.model_base_path:
        raise FlagError("Both server_options.model_base_path and "
                        "server_options.model_config_file are empty!")
    if options.log_format not in log_format.FORMATS:
        raise FlagError(f"--log_format must be one of {', '.join(log_format.FORMATS)}; got "
                        f"{options.log_format!r}")
    if options.enable_v2_protocol and importlib.util.find_spec("tritonclient") is None:
        raise FlagError("--enable_v2_protocol needs the protocol's stubs from tritonclient: pip "
                        "install --no-deps tritonclient==2.73.0 python-rapidjson")
    if options.tracing_otlp_endpoint:
        try:
            tracing.parse_endpoint(options.tracing_otlp_endpoint)
        except ValueError as e:
            raise FlagError(f"--tracing_otlp_endpoint: {e}") from None
    if options.rest_api_enable_ssl and not options.ssl_config_file:
        raise FlagError("--rest_api_enable_ssl needs --ssl_config_file")
    if options.port == 0 and not options.grpc_socket_path:
        raise FlagError("server_options.grpc_socket_path and server_options.port cannot both "
                        "be zero or empty")
    threads = (options.tensorflow_session_parallelism, options.tensorflow_intra_op_parallelism,
               options.tensorflow_inter_op_parallelism)
    if all(t > 0 for t in threads):
        raise FlagError("Either configure server_options.tensorflow_session_parallelism or "
                        "(server_options.tensorflow_intra_op_parallelism, "
                        "server_options.tensorflow_inter_op_parallelism). You cannot configure "
                        "all.")
    if options.model_base_path and not options.model_config_file and not os.path.isabs(
            options.model_base_path) and "://" not in options.model_base_path:
        raise FlagError(f"Expected model {options.model_name} to have an absolute path or URI; "
                        f"got base_path()={options.model_base_path}")
    return options
