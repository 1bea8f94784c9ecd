"""The models and data TensorFlow Serving's example clients expect, built locally.

The clients (``tensorflow_serving/example/`` in TensorFlow Serving) assume downloads that cannot
happen here: MNIST for ``mnist_client.py`` and a trained ResNet plus a cat photo for
``resnet_client.py`` / ``resnet_client_grpc.py``. These builders make stand-ins with the exact
names those clients use; ``run.sh`` uses them at full size and
``tests/conformance/test_tfs_examples.py`` at a tiny one.

* MNIST: scikit-learn's digits scaled to 28x28 and written as MNIST's gzipped IDX files, and a
  TF1 softmax regression exported the way ``mnist_saved_model.py`` exports it (signature
  ``predict_images``: ``images`` -> ``scores``; ``serving_default``: classify over
  ``tf.Example`` feature ``x`` with a string table run by the SavedModel's main op).
* ResNet: a Keras model with input ``input_1`` and output ``activation_49`` (the names of the
  Model Garden Keras ResNet the clients were written for), and a wrapper taking encoded JPEGs
  (the clients' ``MODEL_ACCEPT_JPG = True`` branch).

Command line (used by ``run.sh``)::

    python -m benchmarks.tfs_examples.models mnist WORK_DIR SAVED_MODEL_DIR
    python -m benchmarks.tfs_examples.models resnet50 OUT.keras
    python -m benchmarks.tfs_examples.models jpeg OUT.jpg [--size 224]
    python -m benchmarks.tfs_examples.models classify MODEL.keras IMAGE.jpg
"""

from __future__ import annotations

import argparse
import gzip
import io
import struct
from pathlib import Path

import numpy as np

MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
               "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
MNIST_TEST_SIZE = 500
RESNET_INPUT, RESNET_OUTPUT = "input_1", "activation_49"


def digits_28x28() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as MNIST-like uint8 ``[N, 28, 28]`` images and labels.

    Each pixel becomes a 3x3 block (24x24) centred with a 2-pixel border, as MNIST centres its
    digits in a 28x28 box.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.kron(np.round(digits.images * (255 / 16)), np.ones((3, 3))).astype(np.uint8)
    return np.pad(images, ((0, 0), (2, 2), (2, 2))), digits.target.astype(np.uint8)


def shifted(images: np.ndarray, labels: np.ndarray, by: tuple[int, ...] = (-2, 0, 2)):
    """Every image moved by each (dy, dx) in ``by`` x ``by``: more training rows (the border
    keeps the digit inside the box)."""
    moved = [np.roll(images, (dy, dx), axis=(1, 2)) for dy in by for dx in by]
    return np.concatenate(moved), np.tile(labels, len(by) ** 2)


def write_mnist_idx(work_dir: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Write ``split`` ('train' or 'test') as MNIST's gzipped IDX files, where
    ``mnist_input_data.maybe_download`` finds them and so downloads nothing."""
    work_dir.mkdir(parents=True, exist_ok=True)
    image_file, label_file = MNIST_FILES[split]
    n, rows, cols = images.shape
    with gzip.open(work_dir / image_file, "wb") as f:
        f.write(struct.pack(">4I", 2051, n, rows, cols) + images.astype(np.uint8).tobytes())
    with gzip.open(work_dir / label_file, "wb") as f:
        f.write(struct.pack(">2I", 2049, n) + labels.astype(np.uint8).tobytes())


def mnist_floats(images: np.ndarray) -> np.ndarray:
    """What ``mnist_input_data.DataSet`` hands the client: ``[N, 784]`` float32 in 0..1."""
    return np.multiply(images.reshape(len(images), -1).astype(np.float32), 1.0 / 255.0)


def save_mnist_tf1(export_dir: Path, images: np.ndarray, labels: np.ndarray,
                   steps: int = 200) -> float:
    """Train a softmax regression on ``images`` (``[N, 784]`` floats) and save it as
    ``mnist_saved_model.py`` does: a TF1 graph whose ``images`` input is an identity of
    ``parse_example``'s output (fed directly by name), a ``predict_images`` signature, a classify
    ``serving_default`` with a string table and ``main_op=tables_initializer``.

    Returns the training accuracy.
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    with tf.Graph().as_default(), v1.Session() as session:
        serialized = v1.placeholder(tf.string, name="tf_example")
        parsed = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([784], tf.float32)})
        x = tf.identity(parsed["x"], name="x")
        truth = v1.placeholder(tf.int64, [None])
        w, b = tf.Variable(tf.zeros([784, 10])), tf.Variable(tf.zeros([10]))
        logits = tf.matmul(x, w) + b
        y = tf.nn.softmax(logits, name="y")
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(truth, logits))
        train = v1.train.GradientDescentOptimizer(0.5).minimize(loss)
        accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(y, 1), truth), tf.float32))
        values, indices = tf.nn.top_k(y, 10)
        table = v1.lookup.StaticHashTable(v1.lookup.KeyValueTensorInitializer(
            tf.range(10, dtype=tf.int64), tf.constant([str(i) for i in range(10)])), "")
        classes = table.lookup(tf.cast(indices, tf.int64))
        session.run(v1.global_variables_initializer())
        feed = {x: images, truth: labels.astype(np.int64)}
        for _ in range(steps):
            session.run(train, feed)
        trained = float(session.run(accuracy, feed))
        info = v1.saved_model.utils.build_tensor_info
        constants = v1.saved_model.signature_constants
        classify = v1.saved_model.signature_def_utils.build_signature_def(
            {constants.CLASSIFY_INPUTS: info(serialized)},
            {constants.CLASSIFY_OUTPUT_CLASSES: info(classes),
             constants.CLASSIFY_OUTPUT_SCORES: info(values)}, constants.CLASSIFY_METHOD_NAME)
        predict = v1.saved_model.signature_def_utils.build_signature_def(
            {"images": info(x)}, {"scores": info(y)}, constants.PREDICT_METHOD_NAME)
        builder = v1.saved_model.Builder(str(export_dir))
        builder.add_meta_graph_and_variables(
            session, ["serve"], signature_def_map={"predict_images": predict,
                                                   "serving_default": classify},
            main_op=v1.tables_initializer(), strip_default_attrs=True)
        builder.save()
    return trained


def _with_client_names(inputs, logits, name: str):
    import keras

    outputs = keras.layers.Activation("softmax", name=RESNET_OUTPUT)(logits)
    return keras.Model(inputs, outputs, name=name)


def resnet50_like(name: str = "resnet", seed: int = 0):
    """Keras ResNet50 with random (seeded) weights, input ``input_1`` ``[?, 224, 224, 3]`` float
    and softmax output ``activation_49``, the names ``resnet_client_grpc.py`` sends and reads."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((224, 224, 3), name=RESNET_INPUT)
    base = keras.applications.ResNet50(weights=None, input_tensor=inputs,
                                       classifier_activation=None)
    return _with_client_names(inputs, base.output, name)


def tiny_resnet_like(size: int = 32, classes: int = 10, name: str = "resnet", seed: int = 0):
    """A two-layer conv net with ResNet50's serving names, for tests that need seconds."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name=RESNET_INPUT)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return _with_client_names(inputs, keras.layers.Dense(classes)(x), name)


def decode_jpegs(encoded, size: tuple[int, int]):
    """Encoded JPEGs (any shape, scalar included) -> ``[N, H, W, 3]`` float32 in 0..1: what the
    clients' float branch sends (``np.array(Image.open(...)) / 255.0``), decoded server-side."""
    import tensorflow as tf

    def one(data):
        image = tf.image.resize(tf.io.decode_jpeg(data, channels=3), size)
        return image / 255.0
    return tf.map_fn(one, tf.reshape(encoded, [-1]), fn_output_signature=tf.float32)


def save_jpeg_model(model, export_dir: Path) -> None:
    """Save ``model`` behind a string input ``input_1`` of encoded JPEGs (TF Serving's JPEG
    ResNet exports, the clients' ``MODEL_ACCEPT_JPG = True`` branch); output ``activation_49``.
    A scalar string (gRPC's ``make_tensor_proto(jpeg_bytes)``) is one image."""
    import tensorflow as tf

    size = tuple(model.input.shape[1:3])

    class JpegInput(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            # Keras 3 variables, tracked as plain tf.Variables so that the graph TF Serving
            # loads (by tensor name, not through Python objects) creates and restores them.
            self.weights = [getattr(v, "value", v) for v in model.variables]

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=RESNET_INPUT)])
        def serve(self, encoded):
            return {RESNET_OUTPUT: self.model(decode_jpegs(encoded, size), training=False)}

    module = JpegInput()
    tf.saved_model.save(module, str(export_dir),
                        signatures={"serving_default": module.serve.get_concrete_function()})


def jpeg_bytes(size: int = 224, seed: int = 0) -> bytes:
    """A deterministic RGB JPEG (smooth gradients plus noise: something a classifier can see)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size)
    rgb = np.stack([np.add.outer(ramp, ramp) / 2, np.add.outer(ramp, ramp[::-1]) / 2,
                    np.full((size, size), 128.0)], axis=-1)
    rgb = np.clip(rgb + rng.normal(0, 20, rgb.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=90)
    return out.getvalue()


def client_floats(jpeg: bytes) -> np.ndarray:
    """The tensor the clients send when the model does not take JPEGs: ``[1, H, W, 3]``
    ``np.array(Image.open(jpeg)) / 255.0`` (float64; the gRPC client casts to float32)."""
    from PIL import Image

    return np.expand_dims(np.array(Image.open(io.BytesIO(jpeg))) / 255.0, 0)


def _mnist(args: argparse.Namespace) -> None:
    images, labels = digits_28x28()
    cut = len(images) - MNIST_TEST_SIZE
    train_images, train_labels = shifted(images[:cut], labels[:cut])
    write_mnist_idx(args.work_dir, "train", train_images, train_labels)
    write_mnist_idx(args.work_dir, "test", images[cut:], labels[cut:])
    accuracy = save_mnist_tf1(args.saved_model, mnist_floats(train_images), train_labels)
    print(f"MNIST-format digits: {len(train_images)} train, {MNIST_TEST_SIZE} test images in "
          f"{args.work_dir}; softmax regression (training accuracy {accuracy:.4f}) saved at "
          f"{args.saved_model}")


def _resnet50(args: argparse.Namespace) -> None:
    resnet50_like().save(args.output)
    print(f"ResNet50 (random weights, {RESNET_INPUT} -> {RESNET_OUTPUT}) saved at {args.output}")


def _jpeg(args: argparse.Namespace) -> None:
    args.output.write_bytes(jpeg_bytes(args.size))
    print(f"{args.size}x{args.size} JPEG written at {args.output}")


def _classify(args: argparse.Namespace) -> None:
    import keras

    scores = keras.saving.load_model(args.model)(client_floats(args.image.read_bytes())
                                                 .astype(np.float32))
    print(f"in-process Prediction class: {int(np.argmax(scores))}")


def main(argv: list[str] | None = None) -> None:
    """The command line of the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tfs_examples.models")
    commands = parser.add_subparsers(required=True)
    mnist = commands.add_parser("mnist", help="MNIST-format data and the mnist SavedModel")
    mnist.add_argument("work_dir", type=Path)
    mnist.add_argument("saved_model", type=Path)
    mnist.set_defaults(run=_mnist)
    resnet = commands.add_parser("resnet50", help="ResNet50 with the clients' names, .keras")
    resnet.add_argument("output", type=Path)
    resnet.set_defaults(run=_resnet50)
    jpeg = commands.add_parser("jpeg", help="a local JPEG for the ResNet clients")
    jpeg.add_argument("output", type=Path)
    jpeg.add_argument("--size", type=int, default=224)
    jpeg.set_defaults(run=_jpeg)
    classify = commands.add_parser("classify", help="the ResNet's class in-process")
    classify.add_argument("model", type=Path)
    classify.add_argument("image", type=Path)
    classify.set_defaults(run=_classify)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
