"""``servectl export`` accepts a Keras 3 file, a tf-keras model, and an existing SavedModel."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_serving_platform.export import describe, pipeline, sources
from tf_serving_platform.export.verify import load_as_served, run_signature


def test_keras3_file_of_a_zoo_model_gets_zoo_data_and_signatures(zoo_source, tmp_path):
    trained = zoo_source("wide_deep")
    trained.model.save(tmp_path / "wide_deep.keras")
    source = sources.resolve(str(tmp_path / "wide_deep.keras"))
    assert source.spec is not None and source.origin.startswith("keras:")
    assert source.metrics == trained.metrics
    report = pipeline.export_model(source, tmp_path / "models", progress=False)
    keys = {s.key for s in describe.saved_model_signatures(report.path)}
    assert keys == {"serving_default", "classify", "regress"}


def _tf_keras_model():
    import tf_keras

    inputs = tf_keras.Input(shape=(3,), name="measurements")
    outputs = tf_keras.layers.Dense(2, name="logits")(inputs)
    return tf_keras.Model(inputs, outputs, name="legacy_linear")


def test_tf_keras_savedmodel_is_re_exported_with_its_names(tmp_path):
    model = _tf_keras_model()
    model.save(tmp_path / "legacy", save_format="tf")
    source = sources.resolve(str(tmp_path / "legacy"))
    assert source.origin.startswith("tf-keras:") and source.spec is None
    report = pipeline.export_model(source, tmp_path / "models", progress=False)
    sig = {s.key: s for s in describe.saved_model_signatures(report.path)}["serving_default"]
    assert [t.name for t in sig.inputs] == ["measurements"]
    assert [t.name for t in sig.outputs] == ["logits"]
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = run_signature(load_as_served(report.path), "serving_default",
                        {"measurements": x})
    np.testing.assert_allclose(got["logits"], model(x).numpy(), atol=1e-6)


class _HalfPlusTwo(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def __call__(self, x):
        return {"y": 0.5 * x + 2.0}


def test_existing_savedmodel_is_copied_verified_and_warmed(tmp_path):
    module = _HalfPlusTwo()
    tf.saved_model.save(module, str(tmp_path / "hpt" / "1"),
                        signatures={"serving_default": module.__call__.get_concrete_function()})
    source = sources.resolve(str(tmp_path / "hpt" / "1"))
    assert source.name == "hpt" and source.saved_model is not None
    report = pipeline.export_model(source, tmp_path / "models", progress=False)
    assert report.max_abs_diff == 0.0 and report.warmup_records > 0
    got = run_signature(load_as_served(report.path), "serving_default",
                        {"x": np.array([2.0, 4.0], np.float32)})
    np.testing.assert_allclose(got["y"], [3.0, 4.0])


def test_tf1_graph_the_tf2_loader_cannot_run_is_copied_as_tf_serving_loads_it(tfs_models,
                                                                            tmp_path):
    """TF Serving's own TF1 half_plus_two (``x`` declared ``[-1, 1]``, classify and regress
    inputs of unknown rank): verified and warmed up through a session, as it will be served."""
    version = tfs_models["saved_model_half_plus_two_cpu"] / "00000123"
    report = pipeline.export_model(sources.resolve(str(version)), tmp_path / "models",
                                   progress=False)
    assert report.max_abs_diff == 0.0 and report.warmup_records > 0
    got = run_signature(load_as_served(report.path), "serving_default",
                        {"x": np.array([1.0, 2.0, 5.0], np.float32)})
    np.testing.assert_allclose(got["y"], [2.5, 3.0, 4.5])


def test_savedmodel_whose_default_signature_takes_strings_is_only_loaded(tmp_path):
    """A serving_default over serialized tf.Example (TF Serving's mnist export): nothing here
    can make valid examples, so the copy is loaded as served but not run, and gets no warmup
    records that would fail its load."""
    graph = tf.Graph()
    with graph.as_default():
        serialized = tf.compat.v1.placeholder(tf.string, name="tf_example")
        features = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})
        scores = tf.identity(features["x"] * 0.5 + 2.0, name="scores")
        builder = tf.compat.v1.saved_model.Builder(str(tmp_path / "mnist_like" / "1"))
        with tf.compat.v1.Session(graph=graph) as session:
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={
                "serving_default": tf.compat.v1.saved_model.classification_signature_def(
                    serialized, None, scores)})
        builder.save()
    report = pipeline.export_model(sources.resolve(str(tmp_path / "mnist_like" / "1")),
                                   tmp_path / "models", progress=False)
    assert report.max_abs_diff is None and report.warmup_records == 0
    assert "serving_default" in load_as_served(report.path).signatures
