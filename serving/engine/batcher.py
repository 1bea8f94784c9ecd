"""Server-side batching with TensorFlow Serving's ``BatchingParameters`` semantics.

One :class:`BatchScheduler` per process (TF Serving's ``SharedBatchScheduler``): a pool of
``num_batch_threads`` threads serving one bounded queue per (servable version, signature, output
set, row shape), so requests for different models, versions or signatures never share a batch.

* A task (one request of ``n`` rows) joins the open batch of its queue if it fits
  ``max_batch_size``; otherwise that batch closes and a new one opens. A queue holds at most
  ``max_enqueued_batches`` batches: past that the task is refused at once with UNAVAILABLE
  ``The batch scheduling queue to which this task was submitted is full``.
* A batch runs when it is full, when its oldest task has waited ``batch_timeout_micros``, or when
  a later batch exists; threads take the ready batch whose oldest task waited longest.
* The merged input is padded up to the next ``allowed_batch_sizes`` entry by repeating the first
  row; outputs are sliced back to each caller in order, padding dropped.
* A task larger than ``max_batch_size`` is refused with INVALID_ARGUMENT ``Task size N is larger
  than maximum input batch size M``, or split into ``max_execution_batch_size`` pieces with
  ``enable_large_batch_splitting``.
* A task whose deadline passed while it queued is not computed (DEADLINE_EXCEEDED). A task whose
  caller went away (its future cancelled: a cancelled RPC, a closed connection) leaves its queue
  at once and is never computed; once its batch runs it can no longer be cancelled, and the
  answer to a caller who left is dropped.

Guarantee: no exception ends a batch thread; whatever fails is answered to the batch's callers.
:meth:`BatchScheduler.stall` tells the watchdog when work waits and no batch moves.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

import grpc
import numpy as np

from tf_serving_platform.serving import logger
from tf_serving_platform.serving.engine import request_context
from tf_serving_platform.serving.engine.metrics import Metrics
from tf_serving_platform.serving.engine.servable import Servable
from tf_serving_platform.serving.engine.tracing import OFF, Tracing, wall_ns
from tf_serving_platform.serving.engine.watchdog import ModelRuns, Stall
from tf_serving_platform.serving.errors import ServingError, invalid_argument

log = logger(__name__)

QUEUE_FULL = "The batch scheduling queue to which this task was submitted is full"
THREAD_POOL_NAME = "model_server_batch_threads"
Arrays = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class BatchingOptions:
    """``BatchingParameters`` with TF Serving's defaults for unset fields."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = 2
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int = 0

    @classmethod
    def from_proto(cls, params, cpus: int) -> BatchingOptions:
        """Read a ``BatchingParameters`` message, checking what TF Serving checks."""
        def value(name: str, default):
            return getattr(params, name).value if params.HasField(name) else default
        options = cls(value("max_batch_size", 1000), value("batch_timeout_micros", 0),
                      value("max_enqueued_batches", 10), value("num_batch_threads", cpus),
                      tuple(params.allowed_batch_sizes), params.pad_variable_length_inputs,
                      value("enable_large_batch_splitting", False),
                      value("max_execution_batch_size", 0))
        sizes = options.allowed_batch_sizes
        if sizes and (list(sizes) != sorted(set(sizes)) or sizes[-1] != options.max_batch_size):
            raise ValueError("allowed_batch_sizes entries must be increasing and the last entry "
                             f"must match max_batch_size; got {list(sizes)} and "
                             f"max_batch_size {options.max_batch_size}")
        if options.num_batch_threads < 1 or options.max_batch_size < 1:
            raise ValueError("num_batch_threads and max_batch_size must be >= 1")
        return options

    @property
    def execution_batch_size(self) -> int:
        return self.max_execution_batch_size or self.max_batch_size


@dataclass(eq=False)
class Batch:
    tasks: list[Task] = field(default_factory=list)
    size: int = 0
    closed: bool = False
    taken: bool = False
    """A batch thread took it: its tasks are no longer in a queue."""


@dataclass(eq=False)
class Task:
    inputs: Arrays
    size: int
    deadline: float | None
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)
    queue: TaskQueue | None = None
    batch: Batch | None = None
    traceparent: str | None = None
    """The request's span (tracing on): its queue span goes under it, the batch links to it."""


class TaskQueue:
    """The batches waiting for one servable, signature, output set and row shape."""

    def __init__(self, key: tuple, servable: Servable, signature_key: str,
                 outputs: tuple[str, ...]):
        self.key, self.servable = key, servable
        self.signature_key, self.outputs = signature_key, outputs
        self.batches: deque[Batch] = deque()

    def oldest(self) -> float:
        return self.batches[0].tasks[0].enqueued

    def remove(self, task: Task) -> None:
        """Take a task out of its (not yet taken) batch; an emptied batch leaves the queue."""
        batch = task.batch
        batch.tasks.remove(task)
        batch.size -= task.size
        if not batch.tasks:
            self.batches.remove(batch)


def _rows(inputs: Arrays) -> int:
    sizes = {np.shape(v)[0] if np.ndim(v) else -1 for v in inputs.values()}
    if len(sizes) != 1 or -1 in sizes:
        raise invalid_argument("Batching session Run() input tensors must have equal 0th-"
                               "dimension size and at least one dimension")
    return sizes.pop()


def pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    """Extend ``array`` to ``rows`` rows by repeating its first row."""
    missing = rows - len(array)
    if missing <= 0:
        return array
    return np.concatenate([array, np.repeat(array[:1], missing, axis=0)])


def pad_to_shape(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Pad every non-batch dimension up to ``shape`` with the array's first element."""
    widths = [(0, 0)] + [(0, want - have) for have, want in zip(array.shape[1:], shape,
                                                                strict=True)]
    if not any(after for _, after in widths):
        return array
    fill = array.reshape(-1)[0] if array.size else 0
    return np.pad(array, widths, constant_values=fill) if array.dtype != object else \
        np.pad(array, widths, mode="edge")


def merge(tasks: list[Task], target_rows: int, pad_variable: bool) -> dict[str, np.ndarray]:
    """Concatenate the tasks' inputs along dimension 0, padded to ``target_rows``."""
    merged = {}
    for name in tasks[0].inputs:
        parts = [np.asarray(t.inputs[name]) for t in tasks]
        if pad_variable:
            shape = tuple(np.max([p.shape[1:] for p in parts], axis=0))
            parts = [pad_to_shape(p, shape) for p in parts]
        merged[name] = pad_rows(np.concatenate(parts), target_rows)
    return merged


def split(outputs: Mapping[str, np.ndarray], tasks: list[Task]) -> list[dict[str, np.ndarray]]:
    """Slice batch outputs back into one result per task, in order."""
    results, offset = [], 0
    for task in tasks:
        results.append({k: v[offset:offset + task.size] for k, v in outputs.items()})
        offset += task.size
    return results


class BatchScheduler:
    """The shared pool of batch threads and the queues it serves."""

    def __init__(self, options: BatchingOptions, metrics: Metrics, runs: ModelRuns,
                 tracing: Tracing = OFF):
        self.options = options
        self._metrics, self._runs = metrics, runs
        self._tracing = tracing
        self._lock = threading.Condition()
        self._queues: dict[tuple, TaskQueue] = {}
        self._stopping = False
        self._last_progress = time.monotonic()
        """When a batch thread last took or finished a batch."""
        self._threads = [threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
                         for i in range(options.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, servable: Servable, signature_key: str, inputs: Arrays,
               outputs: tuple[str, ...], deadline: float | None = None) -> Future:
        """Queue one request; the future resolves to its outputs or a ServingError."""
        size = _rows(inputs)
        if size > self.options.max_batch_size:
            if not self.options.enable_large_batch_splitting:
                raise invalid_argument(f"Task size {size} is larger than maximum input batch "
                                       f"size {self.options.max_batch_size}")
            return self._submit_split(servable, signature_key, inputs, outputs, deadline, size)
        context = request_context.current.get()
        task = Task(inputs, size, deadline, traceparent=context.traceparent if context else None)
        shapes = () if self.options.pad_variable_length_inputs else tuple(
            (k, np.shape(v)[1:]) for k, v in sorted(inputs.items()))
        key = (id(servable), signature_key, outputs, shapes)
        with self._lock:
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = TaskQueue(key, servable, signature_key, outputs)
            self._enqueue(queue, task)
            self._lock.notify()
        task.future.add_done_callback(lambda _: self._forget_if_cancelled(task))
        return task.future

    def _forget_if_cancelled(self, task: Task) -> None:
        """A cancelled task leaves its queue now, so it holds no room and no batch runs for it."""
        if not task.future.cancelled():
            return
        with self._lock:
            if task.batch.taken:
                return  # its batch thread drops it (set_running_or_notify_cancel)
            task.queue.remove(task)
            if not task.queue.batches and self._queues.get(task.queue.key) is task.queue:
                del self._queues[task.queue.key]

    def _enqueue(self, queue: TaskQueue, task: Task) -> None:
        batches = queue.batches
        if batches and not batches[-1].closed and \
                batches[-1].size + task.size <= self.options.max_batch_size:
            batch = batches[-1]
        else:
            if len(batches) >= self.options.max_enqueued_batches:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, QUEUE_FULL)
            if batches:
                batches[-1].closed = True
            batch = Batch()
            batches.append(batch)
        batch.tasks.append(task)
        batch.size += task.size
        task.queue, task.batch = queue, batch
        if batch.size == self.options.max_batch_size:
            batch.closed = True

    def _submit_split(self, servable, signature_key, inputs, outputs, deadline, size) -> Future:
        step = self.options.execution_batch_size
        parts = [self.submit(servable, signature_key, {k: v[i:i + step] for k, v in
                                                       inputs.items()}, outputs, deadline)
                 for i in range(0, size, step)]
        combined: Future = Future()

        def done(_):
            with self._lock:  # parts finish on different batch threads: settle once
                if not all(p.done() for p in parts) or combined.done():
                    return
                errors = [p.exception() for p in parts if not p.cancelled() and p.exception()]
                if errors:
                    combined.set_exception(errors[0])
                elif not any(p.cancelled() for p in parts):
                    pieces = [p.result() for p in parts]
                    combined.set_result({k: np.concatenate([p[k] for p in pieces])
                                         for k in pieces[0]})

        def cancel_parts(_):
            if combined.cancelled():
                for part in parts:
                    part.cancel()
        combined.add_done_callback(cancel_parts)
        for part in parts:
            part.add_done_callback(done)
        return combined

    def queue_depth(self) -> int:
        """Tasks waiting in every queue (for the queue-depth gauge)."""
        with self._lock:
            return sum(len(b.tasks) for q in self._queues.values() for b in q.batches)

    def _ready(self, now: float) -> tuple[TaskQueue | None, float | None]:
        """The queue whose first batch should run now, or how long until one should."""
        timeout = self.options.batch_timeout_micros / 1e6
        best, wait = None, None
        for queue in self._queues.values():
            if not queue.batches:
                continue
            first = queue.batches[0]
            due = queue.oldest() + timeout
            if first.closed or len(queue.batches) > 1 or due <= now:
                if best is None or queue.oldest() < best.oldest():
                    best = queue
            else:
                wait = due - now if wait is None else min(wait, due - now)
        return best, wait

    def stall(self, now: float, bound_s: float) -> Stall | None:
        """Work has waited past its batch timeout plus ``bound_s`` and no batch moved within
        ``bound_s``; or a batch thread is gone."""
        dead = [t.name for t in self._threads if not t.is_alive()]
        if dead and not self._stopping:
            return Stall("thread", f"batch thread {', '.join(dead)} is not running")
        with self._lock:
            oldest = min((q.oldest() for q in self._queues.values() if q.batches), default=now)
        waited, idle = now - oldest, now - self._last_progress
        if waited > self.options.batch_timeout_micros / 1e6 + bound_s and idle > bound_s:
            return Stall("batch_queue", f"a batch queue has held a request for {waited:.0f}s "
                                        f"and no batch ran for {idle:.0f}s (bound {bound_s:g}s)")
        return None

    def _work(self) -> None:
        while True:
            with self._lock:
                while True:
                    if self._stopping:
                        return
                    queue, wait = self._ready(time.monotonic())
                    if queue is not None:
                        break
                    self._lock.wait(wait)
                batch = queue.batches.popleft()
                batch.taken = True
                if not queue.batches:
                    del self._queues[queue.key]
                self._last_progress = time.monotonic()
            try:
                self._run(queue, batch)
            except Exception as e:  # noqa: BLE001 - a batch thread must outlive any batch
                log.exception("batch of %s failed outside the model run", queue.servable.name)
                _answer(batch.tasks, error=ServingError(grpc.StatusCode.INTERNAL,
                                                        f"batch failed: {e}"))
            finally:
                self._last_progress = time.monotonic()

    def _run(self, queue: TaskQueue, batch: Batch) -> None:
        now = time.monotonic()
        live = []
        for task in batch.tasks:
            if not task.future.set_running_or_notify_cancel():
                continue  # the caller went away while it queued (counted by the service)
            if task.deadline is not None and task.deadline <= now:
                self._metrics.abandoned.labels("deadline", "queued").inc()
                task.future.set_exception(ServingError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                                       "Deadline Exceeded"))
            else:
                live.append(task)
        if not live:
            return
        rows = sum(t.size for t in live)
        sizes = self.options.allowed_batch_sizes
        target = sizes[bisect.bisect_left(sizes, rows)] if sizes else rows
        self._record(live, rows, target, now)
        try:
            servable = queue.servable
            with self._batch_span(queue, live, rows, target, now) as span:
                merged = merge(live, target, self.options.pad_variable_length_inputs)
                started = time.time_ns()
                outputs = self._runs.call(servable, "Predict", servable.run,
                                          queue.signature_key, merged, list(queue.outputs))
                if span is not None:
                    self._tracing.record("model_run", span, started, time.time_ns(),
                                         {"batch_size": target})
                bad = [k for k, v in outputs.items() if np.ndim(v) == 0 or len(v) != target]
                if bad:
                    raise invalid_argument(f"Batched output tensor {bad[0]} does not have the "
                                           f"batch size {target} as its 0th dimension")
            _answer(live, results=split(outputs, live))
        except ServingError as e:
            _answer(live, error=e)
        except Exception as e:  # noqa: BLE001 - a failing batch must still answer every caller
            _answer(live, error=ServingError(grpc.StatusCode.INTERNAL, f"batch failed: {e}"))

    def _batch_span(self, queue: TaskQueue, tasks: list[Task], rows: int, target: int,
                    taken: float):
        """Tracing on: each traced task's wait in the queue (under its request), then the
        batch's span: under the first request, linked to every request it carries."""
        tracing = self._tracing
        traced = [(t, tracing.context_from_traceparent(t.traceparent)) for t in tasks
                  if t.traceparent] if tracing.enabled else []
        if not traced:
            return contextlib.nullcontext()
        end = wall_ns(taken)
        for task, parent in traced:
            tracing.record("queue", parent, wall_ns(task.enqueued), end, {"batch_size": rows})
        parents = [parent for _, parent in traced]
        servable = queue.servable
        return tracing.span("batch", parents[0], {
            "model": servable.name, "version": servable.version,
            "signature": queue.signature_key, "batch_size": rows,
            "padded_batch_size": target, "requests": len(tasks)}, links=parents,
            start_ns=end)

    def _record(self, tasks: list[Task], rows: int, target: int, now: float) -> None:
        metrics = self._metrics
        for task in tasks:
            metrics.queuing_latency.labels(THREAD_POOL_NAME).observe((now - task.enqueued) * 1e6)
            metrics.wrapped_run_count.inc()
        metrics.input_batch_size.observe(rows)
        metrics.processed_batch_size.observe(target)
        metrics.padding_size.labels(str(target)).observe(target - rows)

    @property
    def threads(self) -> list[threading.Thread]:
        return list(self._threads)

    def stop(self, timeout: float | None = None) -> None:
        """Stop the batch threads; a thread still in a run after ``timeout`` is left behind."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout)


def _answer(tasks: list[Task], results: list | None = None, error: Exception | None = None
            ) -> None:
    """Settle each task's future that is still open; a caller who went away is skipped. Never
    raises: this is what keeps a batch thread alive whatever its callers did."""
    for index, task in enumerate(tasks):
        future = task.future
        with contextlib.suppress(InvalidStateError, RuntimeError):
            if not future.running() and not future.set_running_or_notify_cancel():
                continue
            if error is None:
                future.set_result(results[index])
            else:
                future.set_exception(error)
