"""``--log_format``: the engine's log lines as text (the default) or one JSON object per line.

JSON lines carry ``time``, ``level``, ``logger`` and ``message``, and ``model``, ``version`` and
``request_id`` where they apply: from the record (``extra={"model": ..., "version": ...}``, as
the manager logs loads) or from the request being served (:mod:`serving.engine.request_context`).
A traceback goes in ``exception``, inside the one line, so that a log pipeline never splits it.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from tf_serving_platform.serving.engine import request_context

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(
                    timespec="milliseconds").replace("+00:00", "Z"),
                "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        context = request_context.current.get()
        model = getattr(record, "model", None) or (context.model if context else None)
        if model:
            line["model"] = model
        version = getattr(record, "version", None)
        if version is not None:
            line["version"] = version
        if context is not None:
            line["request_id"] = context.request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(log_format: str = "text") -> None:
    """Send every log record to stderr in ``log_format`` (replacing earlier handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json"
                         else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
