"""``tensorflow.serving.Input`` -> the serialized ``tf.Example`` tensor a classify/regress
signature takes, as ``servables/tensorflow/util.cc`` (``InputToSerializedExampleTensor``) does.

With ``example_list_with_context`` the context is merged into every example by concatenating the
serialized bytes (protobuf merge semantics: repeated features of the example win).
"""

from __future__ import annotations

import numpy as np
from tensorflow_serving.apis import input_pb2

from tf_serving_platform.serving.errors import invalid_argument


def serialized_examples(model_input: input_pb2.Input) -> np.ndarray:
    """A ``[n]`` object array of serialized examples.

    Raises:
        ServingError: INVALID_ARGUMENT ``Input is empty.`` when there is no example.
    """
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        records = [e.SerializeToString() for e in model_input.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = model_input.example_list_with_context
        context = with_context.context.SerializeToString()
        records = [context + e.SerializeToString() for e in with_context.examples]
    else:
        records = []
    if not records:
        raise invalid_argument("Input is empty.")
    return np.array(records, dtype=object)
