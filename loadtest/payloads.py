"""Request bodies for a load test, pre-encoded once per process.

Values come from the signature's inputs (dtype and shape) and look like real data rather than
zeros, which some models short-cut: standardized features for floats (images in [0, 1)),
small category ids for integers, 0-255 for uint8, short English phrases for strings. With
``--payload-npz`` they are real held-out rows instead (one array per input name, rows on the
first axis). A small pool of distinct bodies is encoded before the test starts, so the hot
loop only sends bytes, and caches keyed on the body cannot flatter the server.

Both encodings go through the one tensor codec (``serving.codec``): the REST body is the
columnar ``{"inputs": ...}`` document, which has exactly the shape of a columnar response
(``{"outputs": ...}``), and the gRPC body a serialized ``PredictRequest``. Over the Open
Inference Protocol (``api="v2"``) they are a V2 infer body with JSON tensors and a serialized
``ModelInferRequest`` (``serving.codec.v2``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from tf_serving_platform.loadtest.signature import InputSpec
from tf_serving_platform.serving import codec
from tf_serving_platform.serving.client import ModelRef
from tf_serving_platform.serving.errors import ServingError

UNKNOWN_DIM = 8
"""Size given to unknown non-batch dimensions (sequence lengths, image sides)."""
POOL = 16
"""Distinct request bodies per protocol and process."""
WORDS = ("the", "model", "serves", "a", "quick", "request", "under", "load", "with", "real",
         "latency", "and", "steady", "throughput", "for", "every", "user")


class PayloadError(Exception):
    """The payload file does not fit the signature (one-line message)."""


def concrete_shape(spec: InputSpec, batch: int) -> tuple[int, ...]:
    """The signature's shape with the batch size first and other unknown sizes filled in."""
    if spec.shape is None or not spec.shape:
        return (batch,) if spec.shape is None else ()
    rest = tuple(UNKNOWN_DIM if d < 0 else d for d in spec.shape[1:])
    return (batch if spec.shape[0] < 0 else spec.shape[0], *rest)


def synthesize(specs: list[InputSpec], batch: int, rng: np.random.Generator
               ) -> dict[str, np.ndarray]:
    """One batch of real-looking values for every input (see the module docstring)."""
    arrays = {}
    for spec in specs:
        shape = concrete_shape(spec, batch)
        kind = spec.dtype.numpy_name
        if kind == "object":
            lengths = rng.integers(3, 9, size=shape)
            values = np.frompyfunc(lambda n: " ".join(rng.choice(WORDS, n)).encode(), 1, 1)
            arrays[spec.name] = np.asarray(values(lengths), dtype=object).reshape(shape)
        elif kind == "bool":
            arrays[spec.name] = rng.random(shape) < 0.5
        elif kind.startswith(("int", "uint")):
            high = 256 if kind == "uint8" else 10
            arrays[spec.name] = rng.integers(0, high, size=shape).astype(kind)
        elif kind.startswith("complex") or not kind:
            raise PayloadError(f"input {spec.name!r}: cannot synthesize {spec.dtype.name} "
                               "values; pass --payload-npz with real ones")
        else:
            image = len(shape) >= 4 and shape[-1] in (1, 3)
            values = rng.random(shape) if image else rng.standard_normal(shape)
            arrays[spec.name] = values.astype(spec.dtype.numpy)
    return arrays


def npz_batches(path: Path, specs: list[InputSpec], batch: int, limit: int = POOL
                ) -> list[dict[str, np.ndarray]]:
    """Up to ``limit`` batches of consecutive real rows from an ``.npz`` file.

    Raises:
        PayloadError: the file is unreadable, misses an input, or has too few rows.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            files = {name: data[name] for name in data.files}
    except (OSError, ValueError) as e:
        raise PayloadError(f"cannot read --payload-npz {path}: {e}") from None
    if len(files) == 1 and len(specs) == 1:
        files = {specs[0].name: next(iter(files.values()))}
    missing = [s.name for s in specs if s.name not in files]
    if missing:
        raise PayloadError(f"--payload-npz {path} has arrays {sorted(files)}, but the "
                           f"signature needs inputs {[s.name for s in specs]}")
    rows = min(len(files[s.name]) for s in specs)
    if rows < batch:
        raise PayloadError(f"--payload-npz {path} has {rows} rows; the batch size is {batch}")
    count = min(limit, rows // batch)
    return [{s.name: files[s.name][i * batch:(i + 1) * batch].astype(s.dtype.numpy)
             for s in specs} for i in range(count)]


def rest_body(arrays: dict[str, np.ndarray], target: ModelRef) -> bytes:
    """A columnar REST predict body: ``{"signature_name": ..., "inputs": {...}}``."""
    encoded = codec.encode_predict_json(arrays, row_format=False)
    prefix = b'{"outputs":'
    if not encoded.startswith(prefix):  # the codec's columnar layout; checked, not assumed
        raise PayloadError(f"unexpected codec output {encoded[:20]!r}")
    header = orjson.dumps({"signature_name": target.signature_key})[:-1]
    return header + b',"inputs":' + encoded[len(prefix):]


def grpc_body(arrays: dict[str, np.ndarray], target: ModelRef) -> bytes:
    """A serialized ``PredictRequest`` (values in ``tensor_content``, as clients send them)."""
    from tf_serving_platform.serving.tensorflow_protos import protos_only

    protos_only()
    from tensorflow_serving.apis import predict_pb2

    from tf_serving_platform.serving.client.grpc_calls import model_spec

    request = predict_pb2.PredictRequest(model_spec=model_spec(target))
    for name, value in arrays.items():
        request.inputs[name].CopyFrom(codec.ndarray_to_tensor_proto(value))
    return request.SerializeToString()


def v2_rest_body(arrays: dict[str, np.ndarray], target: ModelRef) -> bytes:
    """An Open Inference Protocol infer body with JSON tensors."""
    from tf_serving_platform.serving.codec import v2 as codec_v2

    return orjson.dumps({"inputs": [
        {"name": name, "datatype": codec_v2.datatype_of(value), "shape": list(value.shape),
         "data": codec_v2.to_json(value)} for name, value in sorted(arrays.items())]},
        option=orjson.OPT_SERIALIZE_NUMPY)


def v2_grpc_body(arrays: dict[str, np.ndarray], target: ModelRef) -> bytes:
    """A serialized ``inference.ModelInferRequest`` (``raw_input_contents``)."""
    from tritonclient.grpc import service_pb2

    from tf_serving_platform.serving.codec import v2 as codec_v2

    request = service_pb2.ModelInferRequest(
        model_name=target.model,
        model_version="" if target.version is None else str(target.version))
    for name, value in sorted(arrays.items()):
        request.inputs.add(name=name, datatype=codec_v2.datatype_of(value),
                           shape=list(value.shape))
        request.raw_input_contents.append(codec_v2.to_raw(value))
    return request.SerializeToString()


ENCODERS = {"tfserving": {"rest": rest_body, "grpc": grpc_body},
            "v2": {"rest": v2_rest_body, "grpc": v2_grpc_body}}
"""API -> protocol -> encoder."""


@dataclass(frozen=True)
class Payloads:
    """Pre-encoded bodies per protocol (``rest``/``grpc``), cycled through by the users."""

    bodies: dict[str, list[bytes]]


def build(specs: list[InputSpec], target: ModelRef, protocols: tuple[str, ...], batch: int = 1,
          npz: Path | None = None, seed: int = 0, api: str = "tfserving") -> Payloads:
    """Encodes the body pool for each protocol.

    Raises:
        PayloadError: the values cannot be produced or encoded for this signature.
    """
    rng = np.random.default_rng(seed)
    batches = (npz_batches(npz, specs, batch) if npz
               else [synthesize(specs, batch, rng) for _ in range(POOL)])
    encoders = ENCODERS[api]
    try:
        bodies = {p: [encoders[p](arrays, target) for arrays in batches] for p in protocols}
    except ServingError as e:
        raise PayloadError(f"cannot encode the payload: {e.message}") from None
    return Payloads(bodies)
