"""The Open Inference Protocol ("KServe V2") over HTTP, on the REST port (``--enable_v2_protocol``).

``GET /v2`` (server metadata), ``/v2/health/live`` and ``/v2/health/ready``,
``/v2/models/{m}[/versions/{v}]`` (model metadata) and ``.../ready``, and
``POST /v2/models/{m}[/versions/{v}]/infer`` with the JSON tensor format and the binary tensor
data extension (``Inference-Header-Content-Length``; ``binary_data_size`` on an input,
``binary_data`` on a requested output or ``binary_data_output`` for all). Health answers 200
when true and 400 when false, as the protocol says; errors are ``{"error": message}`` with the
status the same error gets on the TensorFlow Serving API. Like :mod:`serving.engine.rest`, it
only translates (:mod:`serving.engine.v2`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import unquote

import orjson

from tf_serving_platform.serving.codec import v2 as codec_v2
from tf_serving_platform.serving.engine import v2
from tf_serving_platform.serving.engine.calls import Served
from tf_serving_platform.serving.errors import invalid_argument

if TYPE_CHECKING:
    from tf_serving_platform.serving.engine.health import Health

MODEL_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?(?:/(ready|infer))?")
HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_CONTENT_TYPE = "application/octet-stream"
Answer = tuple[bytes, Served | None, dict | None, int]
"""Body, the version that served, extra headers, HTTP status."""


def labels(method: str, path: str) -> tuple[str, str]:
    """``model_name`` and ``API`` metric labels of a /v2 request."""
    match = MODEL_PATH.fullmatch(path)
    if match is None:
        return "", ""
    return unquote(match.group(1)), v2.API if method == "POST" and match.group(3) == "infer" \
        else ""


def _json(document: dict, status: int = 200) -> Answer:
    return orjson.dumps(document), None, None, status


def _parse(body: bytes, header_length: str | None) -> tuple[dict, memoryview]:
    """The JSON header and the binary part after it."""
    cut = len(body)
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise invalid_argument(f"{HEADER_LENGTH} must be a byte count within the body; got "
                                   f"'{header_length}'")
        cut = int(header_length)
    try:
        document = orjson.loads(body[:cut])
    except orjson.JSONDecodeError as e:
        raise invalid_argument(f"failed to parse the request JSON: {e}") from None
    if not isinstance(document, dict):
        raise invalid_argument("the request must be a JSON object")
    return document, memoryview(body)[cut:]


def _inputs(document: dict, binary: memoryview) -> dict:
    tensors = document.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise invalid_argument("the request needs an 'inputs' list")
    inputs, offset = {}, 0
    for tensor in tensors:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise invalid_argument("each input needs a 'name'")
        name = tensor["name"]
        if name in inputs:
            raise invalid_argument(f"input '{name}' is given twice")
        datatype, shape = tensor.get("datatype"), tensor.get("shape")
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise invalid_argument(f"input '{name}': binary_data_size {size} is past the "
                                       "binary data")
            inputs[name] = codec_v2.from_raw(name, datatype, shape,
                                             bytes(binary[offset:offset + size]))
            offset += size
        else:
            if "data" not in tensor:
                raise invalid_argument(f"input '{name}' has no 'data' (nor binary_data_size)")
            inputs[name] = codec_v2.from_json(name, datatype, shape, tensor["data"])
    if offset != len(binary):
        raise invalid_argument(f"{len(binary) - offset} bytes of binary data belong to no "
                               "input")
    return inputs


def _requested(document: dict) -> tuple[tuple[str, ...], dict[str, bool], bool]:
    """Requested output names, which of them want binary data, and the default for the rest."""
    parameters = document.get("parameters") or {}
    default = bool(parameters.get("binary_data_output", False))
    outputs = document.get("outputs") or []
    if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
        raise invalid_argument("'outputs' must be a list of {\"name\": ...} objects")
    binary = {o["name"]: bool((o.get("parameters") or {}).get("binary_data", default))
              for o in outputs}
    return tuple(o["name"] for o in outputs), binary, default


class V2Rest:
    """The /v2 routes over the service and health of one process (local or remote)."""

    def __init__(self, service, health: Health):
        self._service, self._health = service, health

    async def dispatch(self, method: str, path: str, headers, body: bytes,
                       deadline: float | None) -> Answer:
        if method == "GET" and path == "/v2":
            return _json({"name": v2.SERVER_NAME, "version": v2.server_version(),
                          "extensions": list(v2.EXTENSIONS)})
        if method == "GET" and path in ("/v2/health/live", "/v2/health/ready"):
            if path.endswith("live"):
                live = self._health.not_alive() is None
                return _json({"live": live}, 200 if live else 400)
            ready = self._health.not_ready() is None
            return _json({"ready": ready}, 200 if ready else 400)
        match = MODEL_PATH.fullmatch(path)
        if match is None:
            raise invalid_argument(f"Malformed request: {method} {path}")
        model, version, verb = unquote(match.group(1)), match.group(2), match.group(3)
        if method == "GET" and verb is None:
            return _json(await v2.model_metadata(self._service, model, version))
        if method == "GET" and verb == "ready":
            ready = await v2.model_ready(self._service, model, version)
            return _json({"name": model, "ready": ready}, 200 if ready else 400)
        if method == "POST" and verb == "infer":
            return await self._infer(model, version, headers, body, deadline)
        raise invalid_argument(f"Malformed request: {method} {path}")

    async def _infer(self, model: str, version: str | None, headers, body: bytes,
                     deadline: float | None) -> Answer:
        document, binary = _parse(body, headers.get(HEADER_LENGTH))
        inputs = _inputs(document, binary)
        names, binary_outputs, default_binary = _requested(document)
        call = v2.infer_call(model, version, inputs, names, document.get("parameters") or {},
                             deadline)
        result = await self._service.predict(call)
        outputs, raw = [], []
        for name, datatype, shape, array in v2.outputs_of(result):
            entry: dict = {"name": name, "datatype": datatype, "shape": shape}
            if binary_outputs.get(name, default_binary):
                data = codec_v2.to_raw(array)
                entry["parameters"] = {"binary_data_size": len(data)}
                raw.append(data)
            else:
                entry["data"] = codec_v2.to_json(array)
            outputs.append(entry)
        answer = {"model_name": model, "model_version": str(result.served.version),
                  "outputs": outputs}
        if "id" in document:
            answer["id"] = document["id"]
        header = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
        if not raw:
            return header, result.served, None, 200
        return header + b"".join(raw), result.served, {
            "Content-Type": BINARY_CONTENT_TYPE, HEADER_LENGTH: str(len(header))}, 200
