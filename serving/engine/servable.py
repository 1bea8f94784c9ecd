"""A loaded model version: run it by tensor name, and pin it while a request uses it.

TensorFlow Serving runs every SavedModel as a session (``SavedModelBundle``): requests feed the
signature's input tensors by name and fetch its output tensors by name. A placeholder's declared
shape is not enforced at feed time, only what the graph cannot compute fails, with the kernel's
own error; only what the fetched outputs need is computed (a TF2 signature's function runs
whole). Both runtimes here keep those semantics:

* SavedModels (TF1 graphs and TF2 ``tf.saved_model.save`` alike) load into a TF1 session, whose
  ``Session::Run`` is called directly (Python's ``Session.run`` would add a shape check);
* ``model.tflite`` (with ``--prefer_tflite_model``) runs in :class:`TfLiteSession`.

Guarantee: ``run`` is thread-safe and never touches the event loop; callers hold a pin
(:meth:`Servable.try_pin`) for one request only, and :meth:`Servable.close` waits for pins to
drain, so a request in flight always completes on the version it started on.
"""

from __future__ import annotations

import collections
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import function_pb2, graph_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow.python.saved_model import loader_impl

from tf_serving_platform.serving import logger
from tf_serving_platform.serving.engine import signature as sig_lib
from tf_serving_platform.serving.engine.tflite_session import TfLiteSession
from tf_serving_platform.serving.errors import ServingError, invalid_argument

log = logger(__name__)
Arrays = Mapping[str, np.ndarray]
TFLITE_FILE = "model.tflite"
SAVED_MODEL_FILE = "saved_model.pb"
SESSION_BUNDLE_FILE = "export.meta"
"""The TF1 Session Bundle format, which TensorFlow Serving no longer loads."""
MAX_STRING_RANK = 32
"""TensorFlow's numpy bridge converts string arrays through fixed 32-dimension buffers: a
string tensor of higher rank kills the process, so it is refused (TF Serving, in C++, has no
such limit)."""


class Session(Protocol):
    """What a servable runs on: TensorFlow's ``Session::Run`` contract."""

    def run(self, feeds: Arrays, fetches: Sequence[str]) -> list[np.ndarray]: ...


class Servable:
    """One version of one model, ready to serve."""

    def __init__(self, name: str, version: int, path: Path, kind: str,
                 signature_defs: Mapping[str, meta_graph_pb2.SignatureDef], session: Session):
        self.name, self.version, self.path, self.kind = name, version, path, kind
        """``kind``: the runtime label of TensorFlow Serving's metrics, ``TF1`` or ``TFLite``."""
        self.signature_defs = dict(signature_defs)
        self.signatures = sig_lib.from_signature_defs(self.signature_defs)
        self._session: Session = session
        self._pins = 0
        self._closing = False
        self._drained = threading.Condition()

    def run_tensors(self, feeds: Arrays, fetches: Sequence[str]) -> list[np.ndarray]:
        """Feed tensors by name, fetch tensors by name; TensorFlow's errors as ServingError."""
        for name, value in feeds.items():
            if value.dtype == object and value.ndim > MAX_STRING_RANK:
                raise invalid_argument(f"{name}: string tensors of rank {value.ndim} are not "
                                       f"supported (at most {MAX_STRING_RANK})")
        try:
            return self._session.run(feeds, fetches)
        except tf.errors.OpError as e:
            raise ServingError(_grpc_code(e.error_code), op_error_message(e.message)) from None
        except (TypeError, ValueError) as e:
            raise invalid_argument(str(e)) from None

    def run(self, key: str, inputs: Arrays, outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """Run signature ``key``: inputs and outputs by alias, fed and fetched by tensor name
        (inputs in alias order, which numbers TensorFlow's ``arg[i]`` in its dtype errors)."""
        signature = self.signature_defs[key]
        feeds = {signature.inputs[alias].name: inputs[alias] for alias in sorted(inputs)}
        values = self.run_tensors(feeds, [signature.outputs[o].name for o in outputs])
        return dict(zip(outputs, values, strict=True))

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
            drained = self._drained.wait_for(lambda: self._pins == 0, timeout)
        session, self._session = self._session, _Unloaded()
        # Free the variables now; a run still going past the timeout keeps its session alive,
        # and a TfLiteSession is freed once dropped.
        if drained and isinstance(session, GraphSession):
            session.close()


class _Unloaded:
    def run(self, feeds: Arrays, fetches: Sequence[str]) -> list[np.ndarray]:
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


IMPORT_CHUNK_NODES = 200


def import_in_chunks(graph: tf.Graph, meta_graph: meta_graph_pb2.MetaGraphDef) -> None:
    """Import ``meta_graph``'s nodes into ``graph`` a few hundred per call, and take them out
    of ``meta_graph``, so that the SavedModel loader restores collections, variables and init
    ops on them without importing them again.

    Why: TensorFlow holds the GIL through one import call, and MobileNetV2's 2,368 nodes at
    once are ~125 ms in which no other thread runs (requests to every model stall); chunks of
    200 are ~10 ms each. Nodes tied by control, colocation or name-scope edges share a call
    (a TF1 while loop's back edge stays inside its loop's); a graph that still cannot be cut
    (a cycle between such groups, or an input from outside it) is left whole to the loader.
    """
    graph_def = meta_graph.graph_def
    chunks = _node_chunks(graph_def.node, IMPORT_CHUNK_NODES)
    if chunks is None:
        return
    producer = meta_graph.meta_info_def.stripped_op_list \
        if meta_graph.meta_info_def.HasField("stripped_op_list") else None
    library = graph_def.library
    for part in [*([f] for f in library.function), []]:  # one function per call (the library
        # at once is 80 ms for MobileNetV2's), then the gradients
        tf.graph_util.import_graph_def(graph_pb2.GraphDef(
            library=function_pb2.FunctionDefLibrary(
                function=part, gradient=[] if part else library.gradient),
            versions=graph_def.versions), name="", producer_op_list=producer)
    for nodes in chunks:
        inside = {n.name for n in nodes}
        outside = {_tensor_name(i) for n in nodes for i in n.input  # (a control input is
                   if not i.startswith("^") and i.split(":")[0] not in inside}  # always inside)
        tf.graph_util.import_graph_def(
            graph_pb2.GraphDef(node=nodes, versions=graph_def.versions), name="",
            input_map={t: graph.get_tensor_by_name(t) for t in outside},
            producer_op_list=producer)
    graph_def.ClearField("node")
    graph_def.ClearField("library")


def _tensor_name(node_input: str) -> str:
    return node_input if ":" in node_input else f"{node_input}:0"


def _node_chunks(nodes, size: int) -> list[list] | None:
    """``nodes`` cut into chunks of about ``size``, each needing only earlier chunks' outputs;
    None when only whole will do. Nodes tied by control or colocation edges stay together, and
    so does a node with those named under it (``add`` and ``add/ReadVariableOp``): imported
    after them, ``add`` would clash with their name scope and be renamed ``add_1``."""
    if len(nodes) <= size:
        return None
    needs = {n.name: _dependencies(n) for n in nodes}
    if any(not need <= needs.keys() for need, _ in needs.values()):
        return None  # an input from outside the graph: the import reports it, whole
    for name, (_, tied) in needs.items():
        scopes = name.split("/")[:-1]
        tied.update(p for p in ("/".join(scopes[:i + 1]) for i in range(len(scopes)))
                    if p in needs)
    group = _tied_groups(needs)
    members: dict[str, list] = collections.defaultdict(list)
    for node in nodes:
        members[group[node.name]].append(node)
    users: dict[str, set[str]] = collections.defaultdict(set)
    missing = {}
    for key, grouped in members.items():
        need = {group[d] for n in grouped for d in needs[n.name][0]} - {key}
        missing[key] = len(need)
        for dependency in need:
            users[dependency].add(key)
    ready = collections.deque(key for key in members if missing[key] == 0)
    chunks, chunk = [], []
    while ready:
        key = ready.popleft()
        chunk += members[key]
        if len(chunk) >= size:
            chunks.append(chunk)
            chunk = []
        for user in users[key]:
            missing[user] -= 1
            if missing[user] == 0:
                ready.append(user)
    if sum(map(len, chunks)) + len(chunk) < len(nodes):
        return None  # a cycle between groups
    return chunks + [chunk] if chunk else chunks


def _tied_groups(needs: dict[str, tuple[set[str], set[str]]]) -> dict[str, str]:
    """Each node's group: nodes joined by control, colocation or name-scope ties (union-find)."""
    parent = {name: name for name in needs}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name
    for name, (_, tied) in needs.items():
        for other in tied:
            parent[root(other)] = root(name)
    return {name: root(name) for name in needs}


def _dependencies(node) -> tuple[set[str], set[str]]:
    """(every node ``node`` needs first, those that must be imported in the same call)."""
    data = {i.split(":")[0] for i in node.input if not i.startswith("^")}
    same_call = {i[1:] for i in node.input if i.startswith("^")}
    colocated = node.attr["_class"].list.s if "_class" in node.attr else []
    same_call |= {c.decode()[len("loc:@"):] for c in colocated if c.startswith(b"loc:@")}
    same_call.discard(node.name)
    return data | same_call, same_call


class GraphSession:
    """A SavedModel's MetaGraph in a TF1 session, run by tensor name like ``SavedModelBundle``."""

    def __init__(self, path: Path, tags: set[str], config: tf.compat.v1.ConfigProto):
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph, config=config)
        with self._graph.as_default():
            # tf.compat.v1.saved_model.loader.load, with the graph's nodes imported first.
            loader = loader_impl.SavedModelLoader(str(path))
            import_in_chunks(self._graph, loader.get_meta_graph_def_from_tags(sorted(tags)))
            loader.load(self._session, sorted(tags))
        self._endpoints: dict[str, object] = {}

    def _endpoint(self, name: str):
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            try:
                endpoint = self._graph.get_tensor_by_name(name)._as_tf_output()  # noqa: SLF001
            except (KeyError, ValueError):
                raise invalid_argument(f"Tensor {name}, specified in either feed_devices or "
                                       "fetch_devices was not found in the Graph") from None
            self._endpoints[name] = endpoint
        return endpoint

    def run(self, feeds: Arrays, fetches: Sequence[str]) -> list[np.ndarray]:
        # TensorFlow's C++ Session::Run, without Python's feed-shape check (TF Serving has none).
        return self._session._call_tf_sessionrun(  # noqa: SLF001
            None, {self._endpoint(n): v for n, v in feeds.items()},
            [self._endpoint(n) for n in fetches], [], None)

    def close(self) -> None:
        """Free the session's variables now, not when a stray reference goes: the graph sits
        in reference cycles that only the cyclic GC frees (the manager collects after this)."""
        self._session.close()
        self._session = self._graph = None
        self._endpoints.clear()


def load_saved_model(name: str, version: int, path: Path, tags: set[str],
                     session_config: tf.compat.v1.ConfigProto) -> Servable:
    """Load a SavedModel version into a session, as TensorFlow Serving does."""
    if not (path / SAVED_MODEL_FILE).exists() and (path / SESSION_BUNDLE_FILE).exists():
        raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                           "Session Bundle is deprecated and removed.")
    defs = read_signature_defs(path, tags)
    return Servable(name, version, path, "TF1", defs, GraphSession(path, tags, session_config))


def load_tflite(name: str, version: int, path: Path, pool_size: int = 2) -> Servable:
    """Load ``model.tflite`` into ``pool_size`` interpreters (one request each at a time)."""
    session = TfLiteSession((path / TFLITE_FILE).read_bytes(), pool_size)
    return Servable(name, version, path, "TFLite", session.signature_defs, session)
