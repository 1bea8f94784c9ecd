"""Request logging: the ``ModelConfig.logging_config`` that TensorFlow Serving's open-source build
refuses ("No request-logger-creator provided").

Follows ``core/server_request_logger.cc`` and ``core/request_logger.cc``: a model is logged when its
config has a ``logging_config``; each request is sampled uniformly at random with
``sampling_config.sampling_rate`` (the first ``per_task_sampling_configs`` entry that names no dc
and no task index overrides it, as every task matches such a rule); a reload keeps the logger of
a model whose serialized config is unchanged; a logged record carries the config's
``sampling_config`` in its ``log_metadata``. The one collector type is ``tfrecord``: serialized
``PredictionLog`` records in TFRecord files ``{filename_prefix}-{UTC time}-{pid}-{seq}.tfrecord``,
the format of ``assets.extra/tf_serving_warmup_requests``, so a log can be replayed as warmup.

Unlike TensorFlow Serving, logging never costs the request its latency: the request only samples
and queues a builder; one background thread builds, writes and flushes. When that thread falls
behind, records are dropped (``on_dropped``), never the request slowed. Two models with the same
config get a logger each (TF Serving shares one): their files share the prefix, not a file.

Guarantee: no exception ends the writer thread; whatever fails drops its record and is logged
once per reason.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from google.protobuf.message import Message
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import logging_config_pb2, model_server_config_pb2

from tf_serving_platform.serving import logger, tfrecord
from tf_serving_platform.serving.errors import invalid_argument

log = logger(__name__)

COLLECTORS = ("tfrecord",)
REOPEN_AFTER = 1.0
"""Seconds a logger whose file failed (a full disk) drops records before it tries a new file."""
FLUSH_EVERY = 1.0
"""A busy writer that never finds its queue empty still flushes this often."""
Build = Callable[[], prediction_log_pb2.PredictionLog]
_CLOSE, _STOP = object(), object()
_seq = itertools.count()  # process-wide: two loggers on one prefix never pick the same name


def sampling_rate(config: logging_config_pb2.LoggingConfig) -> float:
    """``sampling_rate``, or that of the first ``per_task_sampling_configs`` rule matching every
    task (no dc, no task index: this server knows neither)."""
    for rule in config.sampling_config.per_task_sampling_configs:
        if not rule.dc and not rule.HasField("task_index"):
            return rule.sampling_rate
    return config.sampling_config.sampling_rate


class RequestLog:
    """One model's logger: its config, its sampling rate and its current file.

    Made by :meth:`RequestLogs.update`; the request path only calls :meth:`submit`. The file is
    touched by the writer thread alone.
    """

    def __init__(self, owner: RequestLogs, model: str, config: logging_config_pb2.LoggingConfig,
                 key: bytes) -> None:
        self.model, self.config, self.key, self._owner = model, config, key, owner
        self.sampling_rate = sampling_rate(config)
        self.retired = False  # removed by a reload: new records are dropped
        self._writer: BinaryIO | None = None
        self._bytes, self._retry_at, self._done = 0, 0.0, False

    def submit(self, build: Build) -> None:
        """Queue ``build`` for the writer thread; never blocks.

        ``build()`` runs on the writer thread, so making the ``PredictionLog`` costs the request
        nothing. ``log_metadata.sampling_config`` is set from the config, and
        ``timestamp_secs`` (the time of this call) and ``model_spec.name`` where ``build`` left
        them unset. A call sampled just before a reload replaced this logger goes to the
        model's new one; a full queue (``max_queued``), or a model whose logging the reload
        removed, drops the record and calls ``on_dropped(model)``.
        """
        logger = self._owner._by_model.get(self.model) if self.retired else self
        if logger is None or not self._owner._put((logger, build, time.time())):
            self._owner._dropped(self.model)

    def _write(self, build: Build, stamp: float) -> bool:
        if self._done or (self._writer is None and time.monotonic() < self._retry_at):
            self._owner._dropped(self.model)
            return False
        try:
            record = build()
            meta = record.log_metadata
            meta.sampling_config.CopyFrom(self.config.sampling_config)
            meta.timestamp_secs = meta.timestamp_secs or int(stamp)
            meta.model_spec.name = meta.model_spec.name or self.model
            data = record.SerializeToString()
        except Exception as e:  # a bad builder loses its record, not the thread
            return self._fail("build", e)
        try:
            if self._writer is None:
                self._writer = self._open()
            self._bytes += tfrecord.write_record(self._writer, data)
        except OSError as e:  # a full disk: drop, try a new file later
            self._discard()
            return self._fail("write", e)
        if self._bytes > self._owner.max_file_bytes:
            self._flush(close=True)
        self._owner._call(self._owner.on_written, self.model)
        return True

    def _open(self) -> BinaryIO:
        prefix = self.config.log_collector_config.filename_prefix
        if os.path.dirname(prefix):
            os.makedirs(os.path.dirname(prefix), exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self._bytes = 0
        return open(f"{prefix}-{stamp}-{os.getpid()}-{next(_seq):05d}.tfrecord", "ab")  # noqa: SIM115 - the writer thread closes it

    def _flush(self, close: bool = False) -> None:
        if self._writer is None:
            return
        try:
            self._writer.close() if close else self._writer.flush()
            if close:
                self._writer = None
        except OSError as e:
            self._discard()
            self._fail("write", e)

    def _discard(self) -> None:
        writer, self._writer, self._retry_at = self._writer, None, time.monotonic() + REOPEN_AFTER
        if writer is not None:
            with contextlib.suppress(OSError):
                writer.close()

    def _fail(self, stage: str, e: Exception) -> bool:
        reason = (self.model, stage, type(e).__name__)
        if reason not in self._owner._reasons:
            self._owner._reasons.add(reason)
            log.warning("request log of model %s: %s failed, record dropped (logged once): %s",
                        self.model, stage, e)
        self._owner._dropped(self.model)
        return False


class RequestLogs:
    """ServerRequestLogger: one :class:`RequestLog` per model that has a ``logging_config``.

    ``on_dropped(model)`` and ``on_written(model)`` feed the metrics; ``max_queued`` bounds the
    records waiting for the single writer thread (a daemon, started with the first logger);
    ``max_file_bytes`` is when a file is closed and the next one opened.
    """

    def __init__(self, on_dropped: Callable[[str], None] = lambda model: None,
                 on_written: Callable[[str], None] = lambda model: None,
                 max_queued: int = 10_000, max_file_bytes: int = 64 << 20) -> None:
        self.on_dropped, self.on_written = on_dropped, on_written
        self.max_queued, self.max_file_bytes = max_queued, max_file_bytes
        self._by_model: dict[str, RequestLog] = {}
        self._items: deque = deque()
        self._cond = threading.Condition()
        self._update_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._reasons: set[tuple] = set()

    def update(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """Apply a (re)loaded config: models whose ``logging_config`` is unchanged keep their
        logger (and open file); changed and new ones get a new one; removed ones are closed
        (flushed, after the records they already queued).

        Everything is checked (:meth:`check`) before anything changes, so a bad reload
        changes nothing; an empty ``logging_config`` means no logging.
        """
        wanted = self.check(config)
        with self._update_lock:
            self._apply(wanted)

    @staticmethod
    def check(config: model_server_config_pb2.ModelServerConfig
              ) -> dict[str, logging_config_pb2.LoggingConfig]:
        """Each model's ``logging_config``, checked; nothing changes.

        Raises:
            ServingError: INVALID_ARGUMENT for an unknown collector type, a ``tfrecord``
                collector without ``filename_prefix``, or a sampling rate outside [0, 1].
        """
        wanted = {}
        for model in config.model_config_list.config:
            if not model.HasField("logging_config") or not model.logging_config.ByteSize():
                continue
            collector = model.logging_config.log_collector_config
            if collector.type not in COLLECTORS:
                raise invalid_argument(f"Cannot find LogCollector::Factory for type: "
                                       f"{collector.type!r} (model {model.name}; known: "
                                       f"{', '.join(COLLECTORS)})")
            if not collector.filename_prefix:
                raise invalid_argument(f"logging_config of model {model.name}: the tfrecord "
                                       "log collector needs a filename_prefix")
            rate = sampling_rate(model.logging_config)
            if math.isnan(rate) or not 0 <= rate <= 1:
                raise invalid_argument(f"logging_config of model {model.name}: sampling_rate "
                                       f"must be in [0, 1]; got {rate}")
            wanted[model.name] = model.logging_config
        return wanted

    def _apply(self, wanted: dict[str, logging_config_pb2.LoggingConfig]) -> None:
        """Called with the update lock held."""
        old, new = self._by_model, {}
        for name, lc in wanted.items():
            key = lc.SerializeToString(deterministic=True)
            kept = old.get(name)
            if kept is None or kept.key != key:
                kept = RequestLog(self, name, _copy(lc), key)
            new[name] = kept
        self._by_model = new  # one assignment: sample() never sees half an update
        for name, gone in old.items():
            if new.get(name) is not gone:
                self._retire(gone)
        if new and (self._thread is None or not self._thread.is_alive()):
            self._thread = threading.Thread(target=self._run, name="request_logger",
                                            daemon=True)
            self._thread.start()

    def sample(self, model: str) -> RequestLog | None:
        """On the request path: the model's logger if this request is sampled
        (``random() < sampling_rate``), else None. A dict lookup and one ``random()``."""
        logger = self._by_model.get(model)
        return logger if logger is not None and random.random() < logger.sampling_rate else None

    def close(self, timeout: float = 5) -> None:
        """Write what is queued, flush and close every file, and stop the writer thread."""
        with self._update_lock:
            old, self._by_model = self._by_model, {}
            for logger in old.values():
                self._retire(logger)
            thread = self._thread
        if thread is not None and thread.is_alive():
            with self._cond:
                self._items.append((None, _STOP, 0.0))
                self._cond.notify()
            thread.join(timeout)
            if thread.is_alive():
                log.warning("request logger did not finish writing within %ss", timeout)

    def _retire(self, logger: RequestLog) -> None:
        logger.retired = True
        with self._cond:  # past the bound: a close must not be dropped
            self._items.append((logger, _CLOSE, 0.0))
            self._cond.notify()

    def _put(self, item: tuple) -> bool:
        with self._cond:
            if len(self._items) >= self.max_queued:
                return False
            self._items.append(item)
            self._cond.notify()
            return True

    def _dropped(self, model: str) -> None:
        self._call(self.on_dropped, model)

    @staticmethod
    def _call(callback: Callable[[str], None], model: str) -> None:
        try:
            callback(model)
        except Exception:
            log.exception("request log callback failed")

    def _run(self) -> None:
        dirty: set[RequestLog] = set()  # written since their last flush
        flushed = time.monotonic()
        while True:
            with self._cond:
                if not dirty:
                    self._cond.wait_for(lambda: self._items)
                item = self._items.popleft() if self._items else None
            try:
                if item is None or time.monotonic() - flushed > FLUSH_EVERY:
                    for logger in dirty:
                        logger._flush()
                    dirty.clear()
                    flushed = time.monotonic()
                if item is not None and self._step(*item, dirty):
                    return
            except Exception:  # the last defence: nothing ends this thread
                log.exception("request logger: unexpected error")

    @staticmethod
    def _step(logger: RequestLog, build, stamp: float, dirty: set[RequestLog]) -> bool:
        """Handle one queued item: a record, a logger's close, or the stop (True)."""
        if build is _STOP:
            return True
        if build is _CLOSE:
            logger._done = True
            logger._flush(close=True)
            dirty.discard(logger)
        elif logger._write(build, stamp):
            dirty.add(logger)
        return False


def log_files(path: str | Path) -> list[Path]:
    """A file, a directory (its ``*.tfrecord`` files), or a ``filename_prefix`` (the files whose
    name starts with it), sorted by name, which is the order they were written in."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(path.glob("*.tfrecord"))
    folder = path.parent
    if not folder.is_dir():
        return []
    return sorted(f for f in folder.iterdir() if f.name.startswith(path.name) and f.is_file())


def read_logs(path: str | Path) -> Iterator[prediction_log_pb2.PredictionLog]:
    """Every record of :func:`log_files` in order (no TensorFlow needed: :mod:`serving.tfrecord`).

    Stops quietly at a truncated last record of a file (its writer is still running or died).

    Raises:
        ValueError: a corrupt record (bad checksum, or not a ``PredictionLog``), naming the file
            and the offset where the record starts.
    """
    for file in log_files(path):
        offset = 0
        for raw in tfrecord.read_records(file):
            try:
                yield prediction_log_pb2.PredictionLog.FromString(raw)
            except ValueError:  # protobuf DecodeError
                raise ValueError(f"{file}: record at offset {offset} is not a PredictionLog"
                                 ) from None
            offset += len(raw) + 16


def summarize(path: str | Path) -> dict:
    """What ``servectl inspect`` prints: ``files``, ``records``, ``bytes`` (of the files),
    ``by_kind`` (``predict_log``...), ``by_model``, ``by_signature``, and ``first``/``last``
    (ISO UTC of the records' ``timestamp_secs``, None without any)."""
    files = log_files(path)
    kinds, models, signatures, stamps = Counter(), Counter(), Counter(), []
    records = 0
    for record in read_logs(path):
        records += 1
        kinds[record.WhichOneof("log_type") or ""] += 1
        meta, inner = record.log_metadata.model_spec, _request_spec(record)
        models[meta.name or (inner.name if inner else "")] += 1
        signatures[meta.signature_name or (inner.signature_name if inner else "")
                   or "serving_default"] += 1
        if record.log_metadata.timestamp_secs:
            stamps.append(record.log_metadata.timestamp_secs)

    def iso(secs):
        return datetime.fromtimestamp(secs, UTC).isoformat() if secs is not None else None

    return {"files": len(files), "records": records,
            "bytes": sum(f.stat().st_size for f in files), "by_kind": dict(kinds),
            "by_model": dict(models), "by_signature": dict(signatures),
            "first": iso(min(stamps, default=None)), "last": iso(max(stamps, default=None))}


def _copy(config: logging_config_pb2.LoggingConfig) -> logging_config_pb2.LoggingConfig:
    copy = logging_config_pb2.LoggingConfig()
    copy.CopyFrom(config)
    return copy


def _request_spec(record: prediction_log_pb2.PredictionLog):
    """The ``ModelSpec`` of the logged request (of its first task or message), if any."""
    kind = record.WhichOneof("log_type")
    request = getattr(record, kind).request if kind else None
    if request is not None and not isinstance(request, Message):  # a stream: repeated
        request = request[0] if len(request) else None
    fields = request.DESCRIPTOR.fields_by_name if request is not None else {}
    if "model_spec" in fields:
        return request.model_spec
    return request.tasks[0].model_spec if "tasks" in fields and request.tasks else None
