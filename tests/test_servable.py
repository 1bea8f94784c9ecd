"""Kernel errors reach clients as TensorFlow Serving words them, without Python's wrapper.

TensorFlow's Python runtime wraps a kernel's error in "Graph execution error:" plus where each
failing node was defined (server file names and lines); TensorFlow Serving's C++ runtime
reports the kernel's message alone. The errors here are raised by real TensorFlow, both by a
``tf.function`` (how SavedModels run), by a TF1 session (the fallback runner) and by the
dataset iterator that reads warmup records.
"""

from __future__ import annotations

import pytest
import tensorflow as tf

from serving.engine import warmup
from serving.engine.servable import op_error_message
from serving.errors import ServingError

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
