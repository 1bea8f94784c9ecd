"""SavedModel signatures for a Keras model, in the shapes TensorFlow Serving's APIs expect.

* ``serving_default`` (Predict): the model's own named inputs and outputs.
* ``classify`` (Classify API): one DT_STRING input ``inputs`` of serialized ``tf.Example``,
  outputs ``classes`` (DT_STRING ``[batch, n]``) and ``scores`` (DT_FLOAT ``[batch, n]``).
* ``regress`` (Regress API): input ``inputs`` as above, output ``outputs`` (DT_FLOAT ``[batch]``).

Those names are the ones ``servables/tensorflow/classifier.cc`` and ``regressor.cc`` look for.
TF2 saves every signature with method ``tensorflow/serving/predict``; :func:`set_method_names`
rewrites the classify/regress ones so the model also works with
``--enable_signature_method_name_check``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tf_serving_platform.models.zoo import Head

PREDICT_KEY = "serving_default"
CLASSIFY_KEY = "classify"
REGRESS_KEY = "regress"
METHOD_NAMES = {CLASSIFY_KEY: "tensorflow/serving/classify",
                REGRESS_KEY: "tensorflow/serving/regress"}


def input_specs(model: Any) -> dict[str, tf.TensorSpec]:
    """The model's inputs as named TensorSpecs, in the order the model declares them."""
    structure = model.input
    tensors = structure.values() if isinstance(structure, Mapping) else tf.nest.flatten(structure)
    return {t.name: tf.TensorSpec(t.shape, tf.as_dtype(t.dtype), name=t.name) for t in tensors}


def call_model(model: Any, inputs: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Call ``model`` on named inputs and name its outputs (dict outputs keep their keys)."""
    structure = model.input
    if isinstance(structure, Mapping):
        args = dict(inputs)
    elif isinstance(structure, Sequence):
        args = [inputs[t.name] for t in structure]
    else:
        args = inputs[structure.name]
    outputs = model(args, training=False)
    if isinstance(outputs, Mapping):
        return dict(outputs)
    flat = tf.nest.flatten(outputs)
    return dict(zip(list(model.output_names)[: len(flat)], flat, strict=True))


def example_feature_spec(specs: Mapping[str, tf.TensorSpec]) -> dict[str, tf.io.FixedLenFeature]:
    """How each model input is stored in a ``tf.Example``: floats, int64s or bytes."""
    def kind(dtype: tf.DType) -> tf.DType:
        if dtype.is_floating:
            return tf.float32
        return tf.string if dtype == tf.string else tf.int64
    return {name: tf.io.FixedLenFeature(spec.shape[1:], kind(spec.dtype))
            for name, spec in specs.items()}


def classifier_head(heads: Sequence[Head]) -> Head | None:
    """The head the ``classify`` signature serves: the first (binary) classification head."""
    return next((h for h in heads if h.kind in ("classification", "binary")), None)


def regressor_head(heads: Sequence[Head]) -> Head | None:
    """The head the ``regress`` signature serves: the first regression head."""
    return next((h for h in heads if h.kind == "regression"), None)


class ServingModule(tf.Module):
    """Holds the model and the signature functions that ``tf.saved_model.save`` exports."""

    def __init__(self, model: Any, heads: Sequence[Head] = (), class_names: Sequence[str] = ()):
        super().__init__()
        self.model = model
        self._specs = input_specs(model)
        self._features = example_feature_spec(self._specs)
        self._class_names = tf.constant(list(class_names), tf.string) if class_names else None
        """None: the classes are the score indices ("0", "1", ...), as many as the scores."""
        self._classifier = classifier_head(heads)
        self._regressor = regressor_head(heads)

    def signatures(self) -> dict[str, Any]:
        """Concrete functions keyed by signature name, ready for ``tf.saved_model.save``."""
        predict = tf.function(self._predict, input_signature=[self._specs])
        found = {PREDICT_KEY: predict.get_concrete_function()}
        examples = [tf.TensorSpec([None], tf.string, name="inputs")]
        if self._classifier:
            found[CLASSIFY_KEY] = tf.function(
                self._classify, input_signature=examples).get_concrete_function()
        if self._regressor:
            found[REGRESS_KEY] = tf.function(
                self._regress, input_signature=examples).get_concrete_function()
        # Track the tf.Variables the functions read, not only Keras 3's wrappers of them: the
        # SavedModel's MetaGraph (what TensorFlow Serving runs in a session) restores exactly
        # the tracked ones, and without this every read fails "Could not find variable".
        self._serving_variables = list({id(v): v for f in found.values()
                                        for v in f.variables}.values())
        return found

    def _predict(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return call_model(self.model, inputs)

    def _parse(self, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        features = tf.io.parse_example(serialized, self._features)
        return call_model(self.model, {name: tf.cast(features[name], spec.dtype)
                                       for name, spec in self._specs.items()})

    def _classify(self, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        scores = self._parse(serialized)[self._classifier.output]
        if self._classifier.kind == "binary":
            scores = tf.concat([1.0 - scores, scores], axis=-1)
        names = self._class_names if self._class_names is not None else \
            tf.strings.as_string(tf.range(tf.shape(scores)[1]))
        classes = tf.tile(names[tf.newaxis, :], [tf.shape(scores)[0], 1])
        return {"classes": classes, "scores": scores}

    def _regress(self, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"outputs": tf.reshape(self._parse(serialized)[self._regressor.output], [-1])}


def set_method_names(export_dir: Path) -> None:
    """Mark the classify/regress signatures with their TensorFlow Serving method names."""
    path = Path(export_dir) / "saved_model.pb"
    saved = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    for meta_graph in saved.meta_graphs:
        for key, method in METHOD_NAMES.items():
            if key in meta_graph.signature_def:
                meta_graph.signature_def[key].method_name = method
    path.write_bytes(saved.SerializeToString())
