"""``servectl predict``: one Predict call over REST or gRPC; prints each output and the latency.

The inputs are typed by the model's signature, read first from the server's metadata, so JSON
numbers reach a float32 input as float32 on either wire, as TensorFlow Serving's REST API types
them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from tf_serving_platform.servectl.arguments import positive, version_number
from tf_serving_platform.servectl.errors import UsageError

EXIT_SERVER_FAULT = 1
SERVER_FAULTS = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS)
IMAGE_MODES = {1: "L", 3: "RGB", 4: "RGBA"}

EXAMPLE = """examples:
  servectl predict half_plus_two --rest http://localhost:8501 --json '{"x": [1.0, 2.0]}'
  servectl predict half_plus_two --grpc localhost:8500 --json '[1.0, 2.0]' --label stable
  servectl predict digits_cnn --rest http://localhost:8501 --npy images=batch.npy
  servectl predict digits_cnn --grpc localhost:8500 --image digit.png --output-filter probabilities
  servectl predict wide_deep --rest http://localhost:8501 --json-file request.json
  servectl predict --list --rest http://localhost:8501
  servectl predict digits_mlp --grpc localhost:8500 --protocol v2 --npy pixels=rows.npy

--json / --json-file take {"input": value, ...}, a bare value for a single-input signature, or a
TensorFlow Serving request body ({"instances": [...]} or {"inputs": ...}); values are typed by the
signature with TensorFlow Serving's JSON rules. --npy and --image repeat, one per input, and may
leave NAME= out for a single-input signature. An image becomes pixels [1, height, width,
channels] in the input's dtype (0-255, resized to the signature's size when it has one), or its
file's bytes when the input is a string.

Exit status: 0 on success; 2 for a bad request, an unknown model or an unreachable server; 1 when
the server fails (INTERNAL, UNKNOWN, DATA_LOSS)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="send one Predict request and print the outputs",
                       description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", help="model name")
    p.add_argument("--list", action="store_true",
                   help="list the server's models, versions, states and labels instead "
                        "(REST, the embedded engine's GET /v1/models)")
    server = p.add_mutually_exclusive_group(required=True)
    server.add_argument("--rest", metavar="URL", help="REST API, e.g. http://localhost:8501")
    server.add_argument("--grpc", metavar="HOST:PORT", help="gRPC API, e.g. localhost:8500")
    p.add_argument("--json", metavar="JSON", help="inputs as JSON text")
    p.add_argument("--json-file", metavar="FILE", type=Path, help="inputs as a JSON file")
    p.add_argument("--npy", metavar="[NAME=]FILE", action="append", default=[],
                   help="an input from a .npy file (repeatable)")
    p.add_argument("--image", metavar="[NAME=]FILE", action="append", default=[],
                   help="an input from an image file, PNG/JPEG/... (repeatable)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--version", type=version_number(0), help="version number (default: latest)")
    which.add_argument("--label", help="version label, e.g. stable or canary")
    p.add_argument("--signature", help="signature key (default: serving_default)")
    p.add_argument("--output-filter", metavar="A,B", help="only these outputs")
    p.add_argument("--protocol", choices=("tfserving", "v2"), default="tfserving",
                   help="TensorFlow Serving's API or the Open Inference Protocol (KServe V2: "
                        "Triton, KServe, MLServer, and this engine with --enable_v2_protocol)")
    p.add_argument("--timeout", type=positive(float), default=30.0, metavar="S",
                   help="deadline of each call in seconds, retries included (default: 30)")
    p.set_defaults(run=run)


def _check_sources(args: argparse.Namespace) -> None:
    if args.list:
        if args.grpc and args.protocol == "tfserving":
            raise UsageError("--list needs --rest: TensorFlow Serving's gRPC API has no model "
                             "list (or --protocol v2, whose gRPC API has one)")
        if args.rest and args.protocol == "v2":
            raise UsageError("--list with --protocol v2 needs --grpc: the protocol's REST API "
                             "has no model list")
        return
    if not args.model:
        raise UsageError("give a model name, or --list")
    json_sources = (args.json is not None) + (args.json_file is not None)
    if json_sources > 1 or (json_sources and (args.npy or args.image)):
        raise UsageError("give the inputs one way: --json, --json-file, or --npy/--image")
    if not json_sources and not (args.npy or args.image):
        raise UsageError("no inputs: give --json, --json-file, --npy or --image")


def _client(args: argparse.Namespace):
    from tf_serving_platform.serving.client.retry import RetryPolicy

    if args.rest:
        from tf_serving_platform.serving.client.rest import RestClient

        try:
            return RestClient(args.rest, timeout_s=args.timeout, retry=RetryPolicy(),
                              protocol=args.protocol)
        except ValueError as e:
            raise UsageError(f"--rest: {e}") from None
    from tf_serving_platform.servectl.tensorflow_import import import_tensorflow

    import_tensorflow()  # the gRPC stubs load TensorFlow's protos; keep its chatter off stderr
    from tf_serving_platform.serving.client.grpc_client import GrpcClient

    try:
        return GrpcClient(args.grpc, timeout_s=args.timeout, retry=RetryPolicy(),
                          protocol=args.protocol)
    except ValueError as e:
        raise UsageError(f"--grpc: {e}") from None


def _json_inputs(text: str, dtypes: dict[str, str]) -> dict[str, np.ndarray]:
    from tf_serving_platform.serving import codec
    from tf_serving_platform.serving.errors import ServingError

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"the inputs are not valid JSON: {e}") from None
    is_body = isinstance(doc, dict) and ("inputs" in doc or "instances" in doc)
    body = text if is_body else '{"inputs": ' + text + "}"
    try:
        request = codec.decode_predict_json(body)
        return codec.bind_inputs(request.inputs, dtypes, request.row_format)
    except ServingError as e:
        raise UsageError(f"the inputs do not fit the signature: {e.message}") from None


def _named_files(specs: list[str], inputs: dict) -> list[tuple[str, Path]]:
    named = []
    for spec in specs:
        name, sep, path = spec.rpartition("=")
        if not sep:
            if len(inputs) != 1:
                raise UsageError(f"{spec}: say which input it is (NAME=FILE); the signature has "
                                 f"inputs {', '.join(sorted(inputs))}")
            name = next(iter(inputs))
        if name not in inputs:
            raise UsageError(f"{spec}: the signature has no input {name!r}; it has "
                             f"{', '.join(sorted(inputs))}")
        if not Path(path).is_file():
            raise UsageError(f"{spec}: no such file {path!r}")
        named.append((name, Path(path)))
    return named


def npy_input(path: Path, spec: Any) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise UsageError(f"{path}: not a .npy array ({e})") from None
    if np.can_cast(array.dtype, spec.numpy_dtype, "same_kind"):
        return array.astype(spec.numpy_dtype, copy=False)
    return array  # the server says what it expected


def image_input(path: Path, spec: Any) -> np.ndarray:
    if spec.dtype == "DT_STRING":
        return np.array([path.read_bytes()], dtype=object)
    from PIL import Image, UnidentifiedImageError

    shape = spec.shape if spec.shape is not None else (None, None, None, 3)
    try:
        image = Image.open(path)
        image = image.convert(IMAGE_MODES.get(shape[-1], "RGB") if len(shape) == 4 else "L")
    except (UnidentifiedImageError, OSError) as e:
        raise UsageError(f"{path}: not an image ({e})") from None
    height, width = shape[1:3] if len(shape) >= 3 else (None, None)
    if height and width and image.size != (width, height):
        image = image.resize((width, height))
    pixels = np.asarray(image)
    if len(shape) == 4 and pixels.ndim == 2:
        pixels = pixels[..., None]
    return pixels[None].astype(spec.numpy_dtype)


def _inputs(args: argparse.Namespace, signature: Any) -> dict[str, np.ndarray]:
    specs = signature.inputs
    if args.json is not None or args.json_file is not None:
        text = args.json
        if args.json_file is not None:
            try:
                text = args.json_file.read_text()
            except OSError as e:
                raise UsageError(f"--json-file: {e}") from None
        return _json_inputs(text, {name: spec.dtype for name, spec in specs.items()})
    inputs = {name: npy_input(path, specs[name]) for name, path in _named_files(args.npy, specs)}
    inputs.update((name, image_input(path, specs[name]))
                  for name, path in _named_files(args.image, specs))
    return inputs


def _short(value: Any) -> str:
    if isinstance(value, bytes) and len(value) > 32:
        return f"{value[:24]!r}...({len(value)} bytes)"
    return repr(value)


def format_output(name: str, array: np.ndarray) -> str:
    """``name: dtype shape`` and the values, numpy's summary of large arrays (``...``)."""
    values = np.array2string(array, threshold=24, edgeitems=3, max_line_width=96,
                             separator=", ", formatter={"object": _short})
    dtype = "string" if array.dtype == object else array.dtype.name
    return f"{name}: {dtype} {array.shape}\n  " + values.replace("\n", "\n  ")


def _predict(args: argparse.Namespace, client: Any) -> int:
    metadata = client.metadata(args.model, version=args.version, label=args.label)
    key = args.signature or "serving_default"
    signature = metadata.signatures.get(key)
    if signature is None:
        keys = ", ".join(k for k in sorted(metadata.signatures) if not k.startswith("__"))
        raise UsageError(f"model {args.model!r} has no signature {key!r}; it has {keys}")
    inputs = _inputs(args, signature)
    output_filter = [a.strip() for a in (args.output_filter or "").split(",") if a.strip()]
    started = time.perf_counter()
    outputs = client.predict(args.model, inputs, version=args.version, label=args.label,
                             signature=args.signature, output_filter=output_filter or None)
    latency_ms = (time.perf_counter() - started) * 1000
    for name in sorted(outputs):
        print(format_output(name, outputs[name]))
    wire = f"REST {args.rest}" if args.rest else f"gRPC {args.grpc}"
    wire += " V2" if args.protocol == "v2" else ""
    print(f"latency: {latency_ms:.1f} ms ({args.model} version {metadata.version}, signature "
          f"{key}, {wire})")
    return 0


def format_models(listings: list) -> str:
    """One row per version: model, version, state, its labels (and a failed load's error)."""
    from tf_serving_platform.serving.tables import format_table

    rows = []
    for model in listings:
        by_version: dict[int, list[str]] = {}
        for label, version in sorted(model.labels.items()):
            by_version.setdefault(version, []).append(label)
        for status in model.versions or [None]:
            if status is None:
                rows.append((model.name, "", "no version found yet", "", ""))
                continue
            error = "" if status.error_code == "OK" else \
                f"{status.error_code}: {status.error_message}"
            rows.append((model.name, status.version, status.state,
                         ",".join(by_version.get(status.version, [])), error))
    return format_table(("model", "version", "state", "labels", "error"), rows)


def _list(client: Any) -> int:
    print(format_models(client.list_models()))
    return 0


def run(args: argparse.Namespace) -> int:
    from tf_serving_platform.serving.client.errors import ServingClientError

    _check_sources(args)
    try:
        with _client(args) as client:
            return _list(client) if args.list else _predict(args, client)
    except ServingClientError as e:
        message = str(e).replace("\n", " ")
        if e.code in SERVER_FAULTS:
            print(f"servectl predict: error: {message}", file=sys.stderr)
            return EXIT_SERVER_FAULT
        raise UsageError(message) from None
