"""A loaded model version: run a signature on numpy inputs, and pin it while a request uses it.

Three runners share one interface:

* SavedModels run the signature's concrete function (``tf.saved_model.load``);
* SavedModels that the TF2 loader cannot load (some TF1-era graphs) run through a TF1 session by
  tensor name, the way TensorFlow Serving runs every SavedModel;
* ``model.tflite`` (with ``--prefer_tflite_model``) runs in a small pool of TFLite interpreters.

Guarantee: ``run`` is thread-safe and never touches the event loop; callers hold a pin
(:meth:`Servable.try_pin`) for one request only, and :meth:`Servable.close` waits for pins to
drain, so a request in flight always completes on the version it started on.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from serving.engine import signature as sig_lib
from serving.errors import ServingError, invalid_argument

log = logging.getLogger(__name__)
Arrays = Mapping[str, np.ndarray]
Runner = Callable[[str, Arrays, list[str]], dict[str, np.ndarray]]
TFLITE_FILE = "model.tflite"
SAVED_MODEL_FILE = "saved_model.pb"


class Servable:
    """One version of one model, ready to serve."""

    def __init__(self, name: str, version: int, path: Path, kind: str,
                 signature_defs: Mapping[str, meta_graph_pb2.SignatureDef], runner: Runner):
        self.name, self.version, self.path, self.kind = name, version, path, kind
        self.signature_defs = dict(signature_defs)
        self.signatures = sig_lib.from_signature_defs(self.signature_defs)
        self._runner = runner
        self._pins = 0
        self._closing = False
        self._drained = threading.Condition()

    def run(self, key: str, inputs: Arrays, outputs: list[str]) -> dict[str, np.ndarray]:
        """Run signature ``key``; TensorFlow's errors come back as ServingError."""
        try:
            return self._runner(key, inputs, outputs)
        except tf.errors.OpError as e:
            raise ServingError(_grpc_code(e.error_code), op_error_message(e.message)) from None
        except (TypeError, ValueError) as e:
            raise invalid_argument(str(e)) from None

    def try_pin(self) -> bool:
        """Hold the servable for one request; False once it is being unloaded."""
        with self._drained:
            if self._closing:
                return False
            self._pins += 1
            return True

    def unpin(self) -> None:
        with self._drained:
            self._pins -= 1
            if self._pins == 0:
                self._drained.notify_all()

    def close(self, timeout: float | None = None) -> None:
        """Refuse new pins, wait for requests in flight, then drop the model."""
        with self._drained:
            self._closing = True
            self._drained.wait_for(lambda: self._pins == 0, timeout)
        self._runner = _closed


def _closed(*_args) -> dict[str, np.ndarray]:
    raise ServingError(grpc.StatusCode.UNAVAILABLE, "servable was unloaded")


# What TensorFlow's Python runtime wraps around a kernel's error: a "Graph execution error:" header
# with, per failing node, where Python defined it (error_interpolation.py, atomic_function.py),
# the eager call's " [Op:__inference_...]" suffix, and the "{{function_node __wrapped__...}}" tag
# of an eager op run as a function.
_PYTHON_CONTEXT_LINE = re.compile(
    r"Graph execution error:|Detected at node .* \(most recent call last\):|"
    r"<stack traces unavailable>|Node: '.*'|\s|$"
)
_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\](?: name: \S*)?\s*\Z")
_WRAPPED_OP_TAG = re.compile(r"\A\{\{function_node __wrapped__\S*\}\}\s*")


def op_error_message(message: str) -> str:
    """The kernel's own error, as TensorFlow Serving's C++ runtime reports it.

    The Python wrapper names the server's source files, which clients must not see.
    """
    lines = message.split("\n")
    if lines[0] == "Graph execution error:":
        start = next((i for i, line in enumerate(lines) if not _PYTHON_CONTEXT_LINE.match(line)),
                     len(lines))
        lines = lines[start:]
    return _WRAPPED_OP_TAG.sub("", _OP_SUFFIX.sub("", "\n".join(lines))) or message


def _grpc_code(tf_code: int) -> grpc.StatusCode:
    return next((c for c in grpc.StatusCode if c.value[0] == tf_code), grpc.StatusCode.UNKNOWN)


def read_signature_defs(path: Path, tags: set[str]) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDefs of the MetaGraph tagged ``tags``, read from saved_model.pb."""
    saved = saved_model_pb2.SavedModel.FromString((path / SAVED_MODEL_FILE).read_bytes())
    for graph in saved.meta_graphs:
        if set(graph.meta_info_def.tags) == tags:
            return dict(graph.signature_def)
    found = [sorted(g.meta_info_def.tags) for g in saved.meta_graphs]
    raise ServingError(grpc.StatusCode.NOT_FOUND,
                       f"Could not find meta graph def matching supplied tags: {{ "
                       f"{' '.join(sorted(tags))} }}. Available tags: {found}")


def _function_runner(loaded) -> Runner:
    functions = dict(loaded.signatures)

    def run(key: str, inputs: Arrays, outputs: list[str]) -> dict[str, np.ndarray]:
        result = functions[key](**inputs)
        return {name: result[name].numpy() for name in outputs}
    return run


def _session_runner(path: Path, tags: set[str], config: tf.compat.v1.ConfigProto,
                    defs: Mapping[str, meta_graph_pb2.SignatureDef]) -> Runner:
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph, config=config)
    with graph.as_default():
        tf.compat.v1.saved_model.loader.load(session, list(tags), str(path))

    def run(key: str, inputs: Arrays, outputs: list[str]) -> dict[str, np.ndarray]:
        signature = defs[key]
        feeds = {signature.inputs[a].name: v for a, v in inputs.items()}
        return session.run({o: signature.outputs[o].name for o in outputs}, feeds)
    return run


def load_saved_model(name: str, version: int, path: Path, tags: set[str],
                     session_config: tf.compat.v1.ConfigProto, session: bool = False
                     ) -> Servable:
    """Load a SavedModel version: TF2 loader first, a TF1 session if that fails.

    Args:
        session: skip the TF2 loader and run signatures in a TF1 session by tensor name, the way
            TensorFlow Serving runs every SavedModel.
    """
    defs = read_signature_defs(path, tags)
    if not session:
        try:
            loaded = tf.saved_model.load(str(path), tags=sorted(tags))
            missing = set(sig_lib.from_signature_defs(defs)) - set(loaded.signatures)
            if missing:
                raise ValueError(f"signatures {sorted(missing)} are not callable")
            return Servable(name, version, path, "TF2", defs, _function_runner(loaded))
        except Exception as e:  # noqa: BLE001 - any TF2 loader failure means: try a session
            log.info("%s/%s: the TF2 loader failed (%s); running it in a TF1 session", name,
                     version, e)
    return Servable(name, version, path, "TF1", defs,
                    _session_runner(path, tags, session_config, defs))


def _tflite_signature_defs(interpreter) -> dict[str, meta_graph_pb2.SignatureDef]:
    defs = {}
    for key in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(key)
        sig = meta_graph_pb2.SignatureDef(method_name=sig_lib.PREDICT_METHOD)
        for target, details in ((sig.inputs, runner.get_input_details()),
                                (sig.outputs, runner.get_output_details())):
            for alias, d in details.items():
                info = target[alias]
                info.name = d["name"]
                info.dtype = tf.as_dtype(d["dtype"]).as_datatype_enum
                for size in d["shape_signature"]:
                    info.tensor_shape.dim.add(size=int(size))
        defs[key] = sig
    return defs


def load_tflite(name: str, version: int, path: Path, pool_size: int = 2) -> Servable:
    """Load ``model.tflite`` into ``pool_size`` interpreters (one request each at a time)."""
    warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")
    pool: queue.Queue = queue.Queue()
    for _ in range(pool_size):
        pool.put(tf.lite.Interpreter(model_path=str(path / TFLITE_FILE)))
    defs = _tflite_signature_defs(pool.queue[0])

    def run(key: str, inputs: Arrays, outputs: list[str]) -> dict[str, np.ndarray]:
        interpreter = pool.get()
        try:
            result = interpreter.get_signature_runner(key)(**inputs)
            return {o: np.array(result[o]) for o in outputs}
        finally:
            pool.put(interpreter)
    return Servable(name, version, path, "TFLite", defs, run)
