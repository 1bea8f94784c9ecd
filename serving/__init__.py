"""The serving side: the tensor codec, the embedded engine and the clients."""

from __future__ import annotations

import logging

IMPORT_PACKAGE = "tf_serving_platform."


def logger(module_name: str) -> logging.Logger:
    """The logger of a module, named by its folder path (``serving.engine.manager``), under the
    ``serving`` logger the engine's other lines use: the names people configure logging and
    filter lines by do not carry the import package."""
    return logging.getLogger(module_name.removeprefix(IMPORT_PACKAGE))
