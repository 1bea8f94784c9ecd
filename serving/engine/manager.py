"""The manager: loads and unloads versions, and resolves requests to a loaded servable.

Contract (after TensorFlow Serving's ``AspiredVersionsManager``):

* The source hands over the *full* aspired version list of a model on every poll; a version left
  out is unloaded. Transitions follow :func:`policy.next_action` (availability preserving: load
  the new version before unloading the old one).
* A version that fails to load ends in state END with its error, is reported by
  :meth:`Manager.version_status`, and never replaces the version that serves. It is retried when
  its directory changes on disk.
* The request path (:meth:`Manager.handle`) reads one immutable :class:`ServingSnapshot` and never
  takes the manager's lock; loading never happens on the request path. A handle pins its servable
  for one request; an unload waits for pins to drain.
* The worker thread never dies: a load or unload that fails in any way ends the version in END
  with its error.
* The worker never waits on a load: each runs on its own thread, so a read that hangs (a dead
  NFS or FUSE mount) holds only its own version, in LOADING, for at most ``load_timeout_s``;
  then it counts as a failed attempt (DEADLINE_EXCEEDED) and whatever the stuck thread returns
  later is dropped. Other models load and unload meanwhile, and :meth:`Manager.stop` never
  waits for a load in progress.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc

from tf_serving_platform.serving import logger
from tf_serving_platform.serving.engine import memory
from tf_serving_platform.serving.engine.policy import State, VersionView, next_action
from tf_serving_platform.serving.engine.servable import Servable
from tf_serving_platform.serving.errors import ServingError

log = logger(__name__)
Loader = Callable[[str, int, Path], Servable]


KEPT_ENDED_VERSIONS = 8
"""Versions that ended and are no longer aspired (deleted, or past the version policy) whose
state GetModelStatus still reports, per model: the newest, as TensorFlow Serving's state
monitor would; older ones are forgotten, so that a model whose versions come and go for months
holds a bounded number of records."""


def _prune_ended(records: dict[int, VersionRecord]) -> None:
    ended = sorted(v for v, r in records.items() if r.state == State.END and not r.aspired)
    for version in ended[:-KEPT_ENDED_VERSIONS]:
        del records[version]


@dataclass
class VersionRecord:
    """What the manager knows about one version of one model."""

    version: int
    path: Path
    state: State = State.START
    aspired: bool = True
    error: ServingError | None = None
    servable: Servable | None = None
    fingerprint: tuple = ()
    """The directory as it was when the version was found: a failed load is retried when the
    directory changes from it."""
    attempts: int = 0
    retry_at: float | None = None
    """Set while a failed load waits for its next attempt (``--load_retry_interval_micros``),
    still LOADING as in TensorFlow Serving: the worker meanwhile serves every other model's
    loads and unloads."""
    load: object | None = None
    """The load in progress (a token its thread must still hold when it finishes)."""
    load_deadline: float | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass(frozen=True)
class ServingSnapshot:
    """What is servable right now: available versions and labels per model. Never mutated."""

    models: Mapping[str, Mapping[int, Servable]] = field(default_factory=dict)
    labels: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


def fingerprint(path: Path) -> tuple:
    """Changes when a version directory is rewritten, so a failed load is retried."""
    try:
        return tuple(p.stat().st_mtime_ns for p in (path, *sorted(path.iterdir())))
    except OSError:
        return ()


def not_found(name: str, version: int | None) -> ServingError:
    request = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
    return ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request}")



def _about(model: str, record: VersionRecord) -> dict:
    """A log record's model and version (``--log_format=json`` prints them as fields)."""
    return {"model": model, "version": record.version}

class Manager:
    """Owns every version's lifecycle; see the module docstring for its guarantees."""

    def __init__(self, loader: Loader, load_retries: int = 0, retry_interval_s: float = 0.0,
                 drain_timeout_s: float | None = None, load_timeout_s: float = 0.0):
        self._loader = loader
        self._load_retries, self._retry_interval_s = load_retries, retry_interval_s
        self._load_timeout_s = load_timeout_s
        self._drain_timeout_s = drain_timeout_s
        self._lock = threading.Condition()
        self._records: dict[str, dict[int, VersionRecord]] = {}
        self._labels: dict[str, dict[str, int]] = {}
        self._snapshot = ServingSnapshot()
        self._stopping = False
        self._load_threads: set[threading.Thread] = set()
        self._worker = threading.Thread(target=self._work, name="manager", daemon=True)
        self._worker.start()

    # ---- fed by the source and the config (off the request path) ----

    def set_aspired_versions(self, model: str, versions: Mapping[int, Path]) -> None:
        """The full set of versions ``model`` should serve; anything else gets unloaded."""
        with self._lock:
            records = self._records.setdefault(model, {})
            for number, record in records.items():
                record.aspired = number in versions
            for number, path in versions.items():
                record = records.get(number)
                if record is None or (record.state == State.END and (
                        not record.failed or fingerprint(path) != record.fingerprint)):
                    records[number] = VersionRecord(number, path,
                                                    fingerprint=fingerprint(path))
            _prune_ended(records)
            self._lock.notify_all()

    def set_labels(self, labels: Mapping[str, Mapping[str, int]],
                   allow_unavailable: bool = False) -> None:
        """Replace every model's labels, with TensorFlow Serving's rule.

        A label may point only to an AVAILABLE version; with ``allow_unavailable``, a *new* label
        (or one that keeps its version) may point to a version that is not loaded yet.

        Raises:
            ServingError: FAILED_PRECONDITION; the labels are then left unchanged.
        """
        with self._lock:
            for model, model_labels in labels.items():
                for label, version in model_labels.items():
                    unchanged = self._labels.get(model, {}).get(label, version) == version
                    record = self._records.get(model, {}).get(version)
                    if not (allow_unavailable and unchanged) and (
                            record is None or record.state != State.AVAILABLE):
                        raise ServingError(
                            grpc.StatusCode.FAILED_PRECONDITION,
                            f"Request to assign label to version {version} of model {model}, "
                            "which is not currently available for inference")
            self._labels = {m: dict(v) for m, v in labels.items() if v}
            self._publish()

    # ---- the request path ----

    @contextmanager
    def handle(self, name: str, version: int | None = None,
               label: str | None = None) -> Iterator[Servable]:
        """Pin the servable a request asks for, for the duration of the ``with`` block.

        Raises:
            ServingError: NOT_FOUND ``Servable not found for request: ...``, or INVALID_ARGUMENT
                ``Unrecognized servable version label: ...``.
        """
        while True:
            servable = self._resolve(self._snapshot, name, version, label)
            if servable.try_pin():
                break
        try:
            yield servable
        finally:
            servable.unpin()

    @staticmethod
    def _resolve(snapshot: ServingSnapshot, name: str, version: int | None,
                 label: str | None) -> Servable:
        if label is not None:
            version = snapshot.labels.get(name, {}).get(label)
            if version is None:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"Unrecognized servable version label: {label}")
        versions = snapshot.models.get(name, {})
        if version is not None:
            if version in versions:
                return versions[version]
            raise not_found(name, version)
        if not versions:
            raise not_found(name, None)
        return versions[max(versions)]

    def snapshot(self) -> ServingSnapshot:
        return self._snapshot

    # ---- status ----

    def version_status(self, name: str, version: int | None = None) -> list[VersionRecord]:
        """Copies of the tracked versions of ``name``, highest first (GetModelStatus).

        Raises:
            ServingError: NOT_FOUND with TensorFlow Serving's messages.
        """
        with self._lock:
            records = self._records.get(name)
            if not records:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Could not find any versions of model {name}")
            if version is not None:
                if version not in records:
                    raise ServingError(grpc.StatusCode.NOT_FOUND,
                                       f"Could not find version {version} of model {name}")
                return [replace(records[version])]
            return [replace(r) for _, r in sorted(records.items(), reverse=True)]

    def wait_until_available(self, models: list[str], timeout: float | None = None,
                             abandoned: Callable[[str], bool] = lambda model: False
                             ) -> dict[str, str]:
        """Block until each model has an AVAILABLE version, all its aspired versions failed,
        it is ``abandoned`` (e.g. a later config dropped it), or the manager stops.

        Returns:
            The models that did not become available (and were not abandoned), with the reason.
        """
        def settled(model: str) -> bool:
            return self._available(model) or self._all_failed(model) or abandoned(model)
        with self._lock:
            self._lock.wait_for(lambda: self._stopping or all(settled(m) for m in models),
                                timeout)
            return {m: "; ".join(f"{{name: {m} version: {r.version}}} due to error: "
                                 f"{r.error.code.name}: {r.error.message}"
                                 for r in self._records.get(m, {}).values() if r.failed)
                    or f"{{name: {m}}} no version loaded"
                    for m in models if not self._available(m) and not abandoned(m)}

    def _available(self, model: str) -> bool:
        return any(r.state == State.AVAILABLE for r in self._records.get(model, {}).values())

    def _all_failed(self, model: str) -> bool:
        aspired = [r for r in self._records.get(model, {}).values() if r.aspired]
        return bool(aspired) and all(r.failed for r in aspired)

    # ---- the worker ----

    @property
    def thread(self) -> threading.Thread:
        """The worker, for the watchdog."""
        return self._worker

    def loads_in_flight(self) -> int:
        """Loads whose thread has not returned (stuck ones too, after their time-out)."""
        return len(self._load_threads)

    def stop(self) -> None:
        """Stop the worker and unload everything (waiting for requests in flight)."""
        with self._lock:
            self._stopping = True
            for records in self._records.values():
                for record in records.values():
                    record.aspired = False
            self._lock.notify_all()
        self._worker.join()

    def _next(self) -> tuple[str, VersionRecord, str] | None:
        now = time.monotonic()
        for model, records in self._records.items():
            for record in records.values():
                if record.load_deadline is not None and record.load_deadline <= now:
                    return model, record, "time out"
                if record.retry_at is not None and (record.retry_at <= now
                                                    or not record.aspired):
                    return model, record, "load"  # (one no longer aspired ends at once)
            action = next_action([VersionView(r.version, r.aspired, r.state, r.failed)
                                  for r in records.values()])
            if action:
                return model, records[action.version], action.kind
        return None

    def _next_wake_in(self) -> float | None:
        """Seconds until a retry or a load's deadline is due (None: none is waiting)."""
        due = [t for records in self._records.values() for r in records.values()
               for t in (r.retry_at, r.load_deadline) if t is not None]
        return max(min(due) - time.monotonic(), 0.0) if due else None

    def _work(self) -> None:
        while True:
            with self._lock:
                step = self._next()
                while step is None:
                    if self._stopping:
                        return
                    self._lock.wait(self._next_wake_in())
                    step = self._next()
                model, record, kind = step
                if kind == "time out":
                    self._load_failed(model, record, ServingError(
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        f"Loading took longer than --load_timeout_seconds="
                        f"{self._load_timeout_s:g} (a read of its files that hangs?)"))
                    continue
                record.state = State.LOADING if kind == "load" else State.UNLOADING
                if kind == "load":
                    self._start_load(model, record)
                    continue
                self._publish()
            self._notify()
            try:
                self._unload(model, record)
            except Exception as e:  # noqa: BLE001 - the worker must outlive any version
                log.exception("unload of %s version %s failed", model, record.version,
                              extra=_about(model, record))
                with self._lock:
                    record.servable, record.state = None, State.END
                    record.error = ServingError(grpc.StatusCode.UNKNOWN, f"unload failed: {e}")
                    self._publish()
            self._notify()

    def _start_load(self, model: str, record: VersionRecord) -> None:
        """One attempt, on a thread of its own (called with the lock held)."""
        record.retry_at = None
        if not record.aspired:  # dropped while it waited to retry
            record.state = State.END
            self._lock.notify_all()
            return
        record.load = token = object()
        record.load_deadline = time.monotonic() + self._load_timeout_s \
            if self._load_timeout_s > 0 else None
        thread = threading.Thread(target=self._load, args=(model, record, token), daemon=True,
                                  name=f"load-{model}-{record.version}")
        try:
            thread.start()
        except RuntimeError as e:  # "can't start new thread": the worker must outlive it
            self._load_failed(model, record, ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                                          f"cannot start a loader thread: {e}"))
            return
        self._load_threads.add(thread)
        self._lock.notify_all()

    def _load(self, model: str, record: VersionRecord, token: object) -> None:
        try:
            self._attempt(model, record, token)
        finally:
            with self._lock:
                self._load_threads.discard(threading.current_thread())

    def _attempt(self, model: str, record: VersionRecord, token: object) -> None:
        started = time.monotonic()
        try:
            servable = self._loader(model, record.version, record.path)
        except Exception as e:  # noqa: BLE001 - any load failure is reported in status
            error = e if isinstance(e, ServingError) else ServingError(
                grpc.StatusCode.UNKNOWN, f"{type(e).__name__}: {e}")
            with self._lock:
                if record.load is token:
                    self._load_failed(model, record, error)
            return
        with self._lock:
            current = record.load is token and not self._stopping
            if current:
                record.load = record.load_deadline = None
                record.servable, record.state = servable, State.AVAILABLE
                self._publish()
                self._lock.notify_all()
        if current:
            log.info("loaded %s version %s in %.2fs", model, record.version,
                     time.monotonic() - started, extra=_about(model, record))
        else:  # it timed out, or the manager stopped, meanwhile
            log.warning("dropping %s version %s: its load finished after %.0fs, too late",
                        model, record.version, time.monotonic() - started,
                        extra=_about(model, record))
            servable.close(0)

    def _load_failed(self, model: str, record: VersionRecord, error: ServingError) -> None:
        """Retry a failed attempt ``load_retries`` times, each after ``retry_interval_s`` in
        which the worker goes on with other versions (one bad version never delays another
        model's load); then END with the error. Called with the lock held."""
        record.load = record.load_deadline = None
        record.attempts += 1
        log.warning("loading %s version %s failed (attempt %d): %s", model, record.version,
                    record.attempts, error.message, extra=_about(model, record))
        if record.attempts <= self._load_retries and record.aspired:
            record.retry_at = time.monotonic() + self._retry_interval_s
        else:
            record.state, record.error = State.END, error
        self._lock.notify_all()

    def _unload(self, model: str, record: VersionRecord) -> None:
        record.servable.close(self._drain_timeout_s)
        with self._lock:
            record.servable = None
        started = time.monotonic()
        memory.release_unloaded()  # before END: a client that sees END sees the memory back
        with self._lock:
            record.state = State.END
        log.info("unloaded %s version %s (memory released in %.3fs)", model, record.version,
                 time.monotonic() - started, extra=_about(model, record))

    def _publish(self) -> None:
        """Swap in a new snapshot of what is AVAILABLE (called with the lock held)."""
        self._snapshot = ServingSnapshot(
            {m: {v: r.servable for v, r in records.items() if r.state == State.AVAILABLE}
             for m, records in self._records.items()},
            {m: dict(labels) for m, labels in self._labels.items()})

    def _notify(self) -> None:
        with self._lock:
            self._lock.notify_all()
