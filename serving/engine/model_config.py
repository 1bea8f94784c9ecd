"""``models.config``: text-format ``tensorflow.serving.ModelServerConfig``, parsed and validated.

Validation follows ``ServerCore::ValidateModelConfigList`` (``model_servers/server_core.cc``):
unique names, absolute base paths, platform ``tensorflow``. The single-model flags build the same
message (``BuildSingleModelConfig``). Beyond TensorFlow Serving, base paths may be confined to
``--model_base_path_roots`` (:func:`check_roots`).
"""

from __future__ import annotations

import os
from pathlib import Path

import grpc
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tf_serving_platform.serving.errors import ServingError, invalid_argument

ModelServerConfig = model_server_config_pb2.ModelServerConfig
SUPPORTED_PLATFORMS = ("tensorflow",)


class ConfigParseError(Exception):
    """The file is not valid text-format ModelServerConfig; the message is protobuf's reason."""


def parse_text(text: str) -> ModelServerConfig:
    """Parse text-format ``ModelServerConfig``.

    Raises:
        ConfigParseError: with ``Error parsing text-format tensorflow.serving.ModelServerConfig:``
            and the parser's ``line:column: reason``, as TensorFlow Serving logs it.
    """
    try:
        return text_format.Parse(text, ModelServerConfig())
    except text_format.ParseError as e:
        raise ConfigParseError("Error parsing text-format tensorflow.serving.ModelServerConfig: "
                               f"{e}") from None


def read_file(path: str | Path) -> ModelServerConfig:
    """Read and parse a config file (see :func:`parse_text`)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigParseError(f"cannot read model config file {path}: {e}") from None
    return parse_text(text)


def single_model(name: str, base_path: str) -> ModelServerConfig:
    """What ``--model_name``/``--model_base_path`` mean: one model, platform tensorflow."""
    config = ModelServerConfig()
    config.model_config_list.config.add(name=name, base_path=base_path,
                                        model_platform="tensorflow")
    return config


def validate(config: ModelServerConfig) -> None:
    """Reject what TensorFlow Serving rejects, with its messages.

    Raises:
        ServingError: INVALID_ARGUMENT (or FAILED_PRECONDITION for a non-list config).
    """
    if config.WhichOneof("config") == "custom_model_config":
        raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                           "ServerModelConfig type not supported by HandleReloadConfigRequest. "
                           "Only ModelConfigList is currently supported")
    seen: set[str] = set()
    for model in config.model_config_list.config:
        if model.name in seen:
            raise invalid_argument(f"Illegal to list model {model.name} multiple times in "
                                   "config list")
        seen.add(model.name)
        if "\x00" in model.base_path or "\x00" in model.name:
            raise invalid_argument(f"Model name and base path must not contain a NUL byte; got "
                                   f"name={model.name!r} base_path={model.base_path!r}")
        if not _is_absolute(model.base_path):
            raise invalid_argument(f"Expected model {model.name} to have an absolute path or "
                                   f"URI; got base_path()={model.base_path}")
        if not model.model_platform:
            raise invalid_argument("Illegal setting neither ModelServerConfig::model_type "
                                   "(deprecated) nor ModelServerConfig::model_platform, model "
                                   f"name is {model.name}")
        if model.model_platform not in SUPPORTED_PLATFORMS:
            raise invalid_argument(f"Model {model.name} requests unsupported platform "
                                   f"{model.model_platform}")


def _is_absolute(base_path: str) -> bool:
    return base_path.startswith("/") or "://" in base_path


def _inside(path: str, root: str) -> bool:
    if "://" in root or "://" in path:  # a URI: its text must start with the root's
        return path.rstrip("/").startswith(root.rstrip("/") + "/") or path == root
    path, root = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([path, root]) == root


def check_roots(config: ModelServerConfig, roots: tuple[str, ...]) -> None:
    """Refuse a config that names a base path outside ``roots`` (``--model_base_path_roots``;
    none: anywhere, as TensorFlow Serving). Symbolic links are resolved first, so a link
    inside a root cannot point outside it.

    Raises:
        ServingError: PERMISSION_DENIED naming the first base path outside every root.
    """
    if not roots:
        return
    for model in config.model_config_list.config:
        if not any(_inside(model.base_path, root) for root in roots):
            raise ServingError(grpc.StatusCode.PERMISSION_DENIED,
                               f"Model {model.name}'s base path {model.base_path} is outside "
                               f"--model_base_path_roots ({','.join(roots)})")
