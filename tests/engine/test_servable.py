"""Kernel errors reach clients as TensorFlow Serving words them, without Python's wrapper.

TensorFlow's Python runtime wraps a kernel's error in "Graph execution error:" plus where each
failing node was defined (server file names and lines); TensorFlow Serving's C++ runtime
reports the kernel's message alone. The errors here are raised by real TensorFlow, both by a
``tf.function`` (how SavedModels run), by a TF1 session (the fallback runner) and by the
dataset iterator that reads warmup records.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tf_serving_platform.serving.engine import warmup
from tf_serving_platform.serving.engine.servable import (
    IMPORT_CHUNK_NODES,
    GraphSession,
    _node_chunks,
    op_error_message,
)
from tf_serving_platform.serving.errors import ServingError

KERNEL_MESSAGE = "Incompatible shapes: [3] vs. [2]"


def _function_error() -> str:
    @tf.function(input_signature=[tf.TensorSpec([None]), tf.TensorSpec([None])])
    def add(a, b):
        return a + b

    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        add(tf.constant([1.0, 2.0, 3.0]), tf.constant([1.0, 2.0]))
    return caught.value.message


def _session_error() -> str:
    graph = tf.Graph()
    with graph.as_default():
        a = tf.compat.v1.placeholder(tf.float32, [None], name="a")
        b = tf.compat.v1.placeholder(tf.float32, [None], name="b")
        total = tf.add(a, b, name="total")
    with tf.compat.v1.Session(graph=graph) as session, \
            pytest.raises(tf.errors.InvalidArgumentError) as caught:
        session.run(total, {a: [1.0, 2.0, 3.0], b: [1.0, 2.0]})
    return caught.value.message


@pytest.mark.parametrize("raise_error", [_function_error, _session_error])
def test_kernel_message_without_python_context(raise_error):
    wrapped = raise_error()
    assert wrapped.startswith("Graph execution error:")  # what the fix is for
    message = op_error_message(wrapped)
    assert message.startswith(KERNEL_MESSAGE), message
    assert "[[{{node" in message  # TensorFlow Serving keeps the node tag
    for python_text in ("File \"", "most recent call last", "Detected at node", "[Op:"):
        assert python_text not in message, message


def test_messages_without_the_wrapper_are_kept():
    assert op_error_message("Data types don't match.") == "Data types don't match."
    assert op_error_message("Input to reshape is a tensor with 3 values [Op:Reshape]") == \
        "Input to reshape is a tensor with 3 values"


def test_warmup_read_errors_carry_the_kernel_message_only(tmp_path):
    """A corrupt warmup file: TensorFlow's eager iterator tags its error as a wrapped function."""
    records = tmp_path / warmup.WARMUP_PATH
    records.parent.mkdir(parents=True)
    records.write_bytes(b"not a TFRecord file" * 3)
    with pytest.raises(ServingError) as caught:
        warmup.read_records(tmp_path)
    assert caught.value.message.startswith("corrupted record at 0"), caught.value.message
    assert caught.value.message.endswith("Please verify your warmup data is in TFRecord format.")


def _save_tf1_chain(path, links: int, while_loop: bool = False) -> float:
    """A TF1 SavedModel ``y = x + sum(v_i)`` over ``links`` variables (each with its read,
    assign and colocation edges), a control dependency across the whole chain, and optionally
    a TF1 while loop (a cycle in the graph); returns ``y`` for ``x = 1``."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [], name="x")
        total = x
        for i in range(links):
            total = total + tf.compat.v1.get_variable(f"v{i}", initializer=float(i))
        if while_loop:
            total = tf.compat.v1.while_loop(lambda i, t: i < 3, lambda i, t: (i + 1, t + 1.0),
                                            [tf.constant(0), total])[1]
        with tf.control_dependencies([total]):
            y = tf.identity(total, name="y")
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(session, ["serve"], {
                "serving_default": tf.compat.v1.saved_model.predict_signature_def(
                    {"x": x}, {"y": y})})
            builder.save()
    return 1.0 + sum(range(links)) + (3.0 if while_loop else 0.0)


@pytest.mark.parametrize("while_loop", [False, True], ids=["chain", "while_loop"])
def test_a_large_tf1_graph_imported_in_chunks_answers_as_it_would_whole(tmp_path, while_loop):
    """The graph is imported a few hundred nodes per call (other models keep being served
    between calls); a TF1 while loop's back edge stays inside one call (its nodes are tied by
    control edges)."""
    expected = _save_tf1_chain(tmp_path / "1", links=150, while_loop=while_loop)
    meta_graph = saved_model_pb2.SavedModel.FromString(
        (tmp_path / "1" / "saved_model.pb").read_bytes()).meta_graphs[0]
    chunks = _node_chunks(meta_graph.graph_def.node, IMPORT_CHUNK_NODES)
    assert len(chunks) > 1 and sum(map(len, chunks)) == len(meta_graph.graph_def.node)
    session = GraphSession(tmp_path / "1", {"serve"}, tf.compat.v1.ConfigProto())
    assert session.run({"x:0": np.float32(1.0)}, ["y:0"])[0] == pytest.approx(expected)
    session.close()
