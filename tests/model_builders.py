"""Small SavedModels the engine tests build themselves (no download, no training).

* ``half_plus_two``: ``y = 0.5 * x + 2`` with ``serving_default`` (x, y: float ``[-1]``) and
  ``classify_x_to_y`` / ``regress_x_to_y`` over ``tf.Example`` (feature ``x``), like TensorFlow
  Serving's own test model.
* ``multi_signature``: ``serving_default`` (x -> y = 2x), ``plus_one`` and ``sum_and_product``
  (two inputs, two outputs).
* ``strings``: string input ``text`` -> ``length`` (int64), ``upper`` (string) and
  ``upper_bytes`` (string, written as b64 in JSON because of its name).
* ``many_outputs``: float ``x [-1, 3]`` -> ``sum``, ``max``, ``argmax`` (int64), ``scaled``.
* ``dtypes``: one input of each JSON-expressible dtype, echoed to outputs.
* ``tf1_graph``: a TF1-era graph (placeholders + variables, SavedModelBuilder) computing
  ``y = 3 * x + 1``.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from tf_serving_platform.export.warmup import write_warmup


class HalfPlusTwo(tf.Module):
    def __init__(self):
        super().__init__()
        self.a = tf.Variable(0.5)
        self.b = tf.Variable(2.0)

    def _y(self, x):
        return self.a * x + self.b

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def predict(self, x):
        return {"y": self._y(x)}

    def _x(self, serialized):
        return tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, serialized):
        return {"scores": self._y(self._x(serialized))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, serialized):
        return {"outputs": self._y(self._x(serialized))}

    def signatures(self):
        return {"serving_default": self.predict, "classify_x_to_y": self.classify,
                "regress_x_to_y": self.regress}


class MultiSignature(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def times_two(self, x):
        return {"y": 2.0 * x}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def plus_one(self, x):
        return {"y": x + 1.0}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="a"),
                                  tf.TensorSpec([None], tf.float32, name="b")])
    def sum_and_product(self, a, b):
        return {"sum": a + b, "product": a * b}

    def signatures(self):
        return {"serving_default": self.times_two, "plus_one": self.plus_one,
                "sum_and_product": self.sum_and_product}


class Strings(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def predict(self, text):
        upper = tf.strings.upper(text)
        return {"length": tf.cast(tf.strings.length(text), tf.int64), "upper": upper,
                "upper_bytes": upper}

    def signatures(self):
        return {"serving_default": self.predict}


class ManyOutputs(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def predict(self, x):
        return {"sum": tf.reduce_sum(x, axis=1), "max": tf.reduce_max(x, axis=1),
                "argmax": tf.argmax(x, axis=1), "scaled": x * 10.0}

    def signatures(self):
        return {"serving_default": self.predict}


DTYPES = {"f32": tf.float32, "f64": tf.float64, "i32": tf.int32, "i64": tf.int64,
          "u8": tf.uint8, "i8": tf.int8, "b": tf.bool, "s": tf.string}


class Dtypes(tf.Module):
    @tf.function(input_signature=[{k: tf.TensorSpec([None], v, name=k)
                                   for k, v in DTYPES.items()}])
    def predict(self, inputs):
        return {f"{k}_out": tf.identity(v) for k, v in inputs.items()}

    def signatures(self):
        return {"serving_default": self.predict}


def save_tf1_graph(path: Path) -> None:
    """``y = 3x + 1`` written the TF1 way: placeholders, variables, SavedModelBuilder."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        a = tf.compat.v1.get_variable("a", initializer=3.0)
        b = tf.compat.v1.get_variable("b", initializer=1.0)
        y = tf.identity(a * x + b, name="y")
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(path))
            signature = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
            builder.add_meta_graph_and_variables(session, ["serve"],
                                                 {"serving_default": signature})
            builder.save()


def save_module(module: tf.Module, path: Path, signatures: dict) -> None:
    tf.saved_model.save(module, str(path), signatures={
        key: fn.get_concrete_function() for key, fn in signatures.items()})


MODULES = {"half_plus_two": HalfPlusTwo, "multi_signature": MultiSignature, "strings": Strings,
           "many_outputs": ManyOutputs, "dtypes": Dtypes}


def build_all(base: Path) -> dict[str, Path]:
    """Write every test model as version 1 under ``base/<name>/``; return the base paths."""
    paths = {}
    for name, cls in MODULES.items():
        module = cls()
        save_module(module, base / name / "1", module.signatures())
        paths[name] = base / name
    save_tf1_graph(base / "tf1_graph" / "1")
    paths["tf1_graph"] = base / "tf1_graph"
    write_warmup(base / "half_plus_two" / "1", "half_plus_two",
                 {"x": tf.constant([1.0, 2.0]).numpy()}, ["serving_default"])
    return paths


class Linear(tf.Module):
    """``y = a * x + b`` after ``max(work)`` rounds of busy work: a model whose run time the
    request chooses, to hold a request in flight across a version swap or a shutdown."""

    def __init__(self, a: float, b: float):
        super().__init__()
        self.a, self.b = tf.Variable(a), tf.Variable(b)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x"),
                                  tf.TensorSpec([None], tf.int32, name="work")])
    def predict(self, x, work):
        m = tf.ones([256, 256]) / 256.0

        def body(i, acc):
            return i + 1, tf.matmul(acc, m)
        _, acc = tf.while_loop(lambda i, acc: i < tf.reduce_max(work), body,
                               (tf.constant(0), m))
        return {"y": self.a * x + self.b + 0.0 * tf.reduce_sum(acc)}

    def signatures(self):
        return {"serving_default": self.predict}


def save_linear(path: Path, a: float, b: float) -> Path:
    """Publish a Linear model at ``path`` atomically (written aside, then renamed)."""
    staging = path.parent / f".staging-{path.name}"
    module = Linear(a, b)
    save_module(module, staging, module.signatures())
    staging.rename(path)
    return path
