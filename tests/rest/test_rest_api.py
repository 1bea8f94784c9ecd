"""REST conformance: TensorFlow Serving's HTTP API (g3doc/api_rest.md) on the real engine.

Each case sends one request with the stdlib HTTP client to the shared session engine and checks
the status, ``Content-Type: application/json`` and the whole parsed body: the exact JSON of a
success, or ``{"error": <TensorFlow Serving's message>}``. Bodies are parsed with Python's json
module, keeping the ``NaN`` / ``Infinity`` / ``-Infinity`` tokens as those strings so that the
exact token is checked. ``half_plus_two`` computes ``0.5 * x + 2`` (``tests/model_builders.py``).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from google.protobuf import json_format, text_format
from tensorflow.core.protobuf import saved_model_pb2

from tests.helpers import send, send_json

HPT = "/v1/models/half_plus_two"
AVAILABLE_V1 = {"model_version_status": [
    {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
DTYPE_INPUTS = {"f32": [1], "f64": [1], "i32": [1], "i64": [1], "u8": [1], "i8": [1],
                "b": [True], "s": ["a"]}
REGRESS, CLASSIFY, SP = "regress_x_to_y", "classify_x_to_y", "sum_and_product"
MISSING_EXAMPLES = "When method is classify, key 'examples' is expected and was not found"


def _dtypes(**changes) -> dict:
    return {"inputs": {**DTYPE_INPUTS, **changes}}


def _elem(index: int, inner: str, key: str | None = None) -> str:
    """An error in element ``index`` of ``instances``, wrapped as TF Serving wraps it."""
    where = f"{index} key: {key}" if key else f"{index}"
    return f"Failed to process element: {where} of 'instances' list. Error: " \
           f"INVALID_ARGUMENT: {inner}"


def _doc_error(doc: dict, message: str) -> str:
    """``FormatError``: the message prefixed with the whole request document."""
    return f"JSON Value: {json.dumps(doc, separators=(',', ':'))} {message}"


def _signature_defs(base: Path) -> dict:
    """The SignatureDefs written in version 1's saved_model.pb (what metadata must echo)."""
    saved = saved_model_pb2.SavedModel.FromString((base / "1" / "saved_model.pb").read_bytes())
    return dict(saved.meta_graphs[0].signature_def)


# (id, request line, body, status, expected body (dict) or error message (str))
STATUS_CASES = [
    ("status_latest", f"GET {HPT}", None, 200, AVAILABLE_V1),
    ("status_version", f"GET {HPT}/versions/1", None, 200, AVAILABLE_V1),
    ("status_label_ignored", f"GET {HPT}/labels/anything", None, 200, AVAILABLE_V1),
    ("status_case_insensitive", "GET /V1/Models/half_plus_two", None, 200, AVAILABLE_V1),
    ("status_url_encoded_name", "GET /v1/models/half%5Fplus%5Ftwo", None, 200, AVAILABLE_V1),
    ("status_unknown_model", "GET /v1/models/nope", None, 404,
     "Could not find any versions of model nope"),
    ("status_unknown_model_version", "GET /v1/models/nope/versions/1", None, 404,
     "Could not find any versions of model nope"),
    ("status_unknown_version", f"GET {HPT}/versions/99", None, 404,
     "Could not find version 99 of model half_plus_two"),
    ("version_without_name", "GET /v1/models/versions/1", None, 400,
     "Missing model name in request."),
    ("status_version_overflow", f"GET {HPT}/versions/9223372036854775808", None, 400,
     "Failed to convert version: 9223372036854775808 to numeric."),
    ("metadata_unknown_model", "GET /v1/models/nope/metadata", None, 404,
     "Servable not found for request: Latest(nope)"),
    ("metadata_unknown_version", f"GET {HPT}/versions/99/metadata", None, 404,
     "Servable not found for request: Specific(half_plus_two, 99)"),
    ("metadata_unknown_label", f"GET {HPT}/labels/x/metadata", None, 400,
     "Unrecognized servable version label: x"),
]
MALFORMED = {"version_not_numeric": f"GET {HPT}/versions/abc", "get_predict": f"GET {HPT}:predict",
             "version_and_label": f"POST {HPT}/versions/1/labels/x:predict",
             "upper_case_verb": f"POST {HPT}:PREDICT", "unknown_verb": f"POST {HPT}:explain",
             "post_metadata": f"POST {HPT}/metadata", "put": f"PUT {HPT}:predict",
             "delete": f"DELETE {HPT}", "get_version_and_label": f"GET {HPT}/versions/1/labels/x"}
TRANSPORT_CASES = [(f"malformed_{i}", r, {"instances": [1.0]}, 400, f"Malformed request: {r}")
                   for i, r in MALFORMED.items()] + [
    ("case_insensitive_path", "POST /V1/MODELS/half_plus_two:predict", {"instances": [1.0]},
     200, {"predictions": [2.5]}),
]

PREDICT_OK = [  # (id, model path, body, expected); POST /v1/models/<model path>:predict -> 200
    ("row_one_output", "half_plus_two", {"instances": [1.0, 2.0, 5.0]},
     {"predictions": [2.5, 3.0, 4.5]}),
    ("columnar_one_output", "half_plus_two", {"inputs": [1.0, 2.0, 5.0]},
     {"outputs": [2.5, 3.0, 4.5]}),
    ("specific_version", "half_plus_two/versions/1", {"inputs": [1.0]}, {"outputs": [2.5]}),
    ("row_named_float_takes_int", "half_plus_two", {"instances": [{"x": 1.0}, {"x": 3}]},
     {"predictions": [2.5, 3.5]}),
    ("columnar_extra_key_ignored", "half_plus_two", {"inputs": {"x": [1.0], "extra": 5}},
     {"outputs": [2.5]}),
    ("float32_text", "half_plus_two", {"instances": [0.1, 0.3333333333]},
     {"predictions": [2.05, 2.16666675]}),
    ("nan_infinity_row", "half_plus_two", '{"instances": [NaN, Infinity, -Infinity, -Inf]}',
     {"predictions": ["NaN", "Infinity", "-Infinity", "-Infinity"]}),
    ("nan_infinity_columnar", "half_plus_two", '{"inputs": [NaN, Infinity, -Infinity]}',
     {"outputs": ["NaN", "Infinity", "-Infinity"]}),
    ("zero_rows", "half_plus_two", {"inputs": {"x": []}}, {"outputs": []}),
    ("trailing_bytes_ignored", "half_plus_two", '{"instances": [1.0]} trailing',
     {"predictions": [2.5]}),
    ("url_encoded_name", "half%5Fplus%5Ftwo", {"instances": [1.0]}, {"predictions": [2.5]}),
    ("signature_plus_one", "multi_signature", {"signature_name": "plus_one", "instances": [1.0]},
     {"predictions": [2.0]}),
    ("default_signature", "multi_signature", {"instances": [1.0, 2.0]},
     {"predictions": [2.0, 4.0]}),
    ("row_two_outputs", "multi_signature",
     {"signature_name": SP, "instances": [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]},
     {"predictions": [{"sum": 3.0, "product": 2.0}, {"sum": 7.0, "product": 12.0}]}),
    ("columnar_two_outputs", "multi_signature",
     {"signature_name": SP, "inputs": {"a": [1.0, 3.0], "b": [2.0, 4.0]}},
     {"outputs": {"sum": [3.0, 7.0], "product": [2.0, 12.0]}}),
    ("row_many_outputs", "many_outputs", {"instances": [[1.0, 5.0, 2.0], [-1, -2, -3]]},
     {"predictions": [{"sum": 8.0, "max": 5.0, "argmax": 1, "scaled": [10.0, 50.0, 20.0]},
                      {"sum": -6.0, "max": -1.0, "argmax": 0,
                       "scaled": [-10.0, -20.0, -30.0]}]}),
    ("columnar_many_outputs", "many_outputs", {"inputs": [[1.0, 5.0, 2.0]]},
     {"outputs": {"sum": [8.0], "max": [5.0], "argmax": [1], "scaled": [[10.0, 50.0, 20.0]]}}),
    ("strings_b64_in_bytes_out", "strings", {"instances": ["ab", {"b64": "aGVsbG8="}]},
     {"predictions": [{"length": 2, "upper": "AB", "upper_bytes": {"b64": "QUI="}},
                      {"length": 5, "upper": "HELLO", "upper_bytes": {"b64": "SEVMTE8="}}]}),
    ("strings_named_b64", "strings", {"instances": [{"text": {"b64": "aGk="}}]},
     {"predictions": [{"length": 2, "upper": "HI", "upper_bytes": {"b64": "SEk="}}]}),
    ("strings_columnar_utf8", "strings", {"inputs": ["ab", "h\u00e9llo"]},
     {"outputs": {"length": [2, 6], "upper": ["AB", "H\u00e9LLO"],
                  "upper_bytes": [{"b64": "QUI="}, {"b64": "SMOpTExP"}]}}),
    ("strings_zero_rows", "strings", {"inputs": {"text": []}},
     {"outputs": {"length": [], "upper": [], "upper_bytes": []}}),
    ("dtypes_row", "dtypes", {"instances": [{"f32": 1, "f64": 0.1, "i32": -7, "u8": 255,
                                             "i64": 9007199254740993, "i8": -128, "b": True,
                                             "s": "hi"}]},
     {"predictions": [{"f32_out": 1.0, "f64_out": 0.1, "i32_out": -7, "u8_out": 255,
                       "i64_out": 9007199254740993, "i8_out": -128, "b_out": True,
                       "s_out": "hi"}]}),
    # Floats overflow to infinity; int8/uint8 take any int32 and wrap (no narrower check).
    ("dtypes_columnar", "dtypes", _dtypes(
        f32=[1e39, -1e39, 0.5], f64=[0.1, 1e300, 2], i32=[2147483647, -2147483648, 0],
        i64=[-1, 0, 2], u8=[0, 255, 256], i8=[127, -128, 128], b=[True, False, True],
        s=["", "x", {"b64": "AAE="}]),
     {"outputs": {"f32_out": ["Infinity", "-Infinity", 0.5], "f64_out": [0.1, 1e300, 2.0],
                  "i32_out": [2147483647, -2147483648, 0], "i64_out": [-1, 0, 2],
                  "u8_out": [0, 255, 0], "i8_out": [127, -128, -128],
                  "b_out": [True, False, True], "s_out": ["", "x", "\u0000\u0001"]}}),
    ("dtypes_nan_row", "dtypes", '{"instances": [{"f32": NaN, "f64": -Infinity, "i32": 1, '
     '"i64": 1, "u8": 1, "i8": 1, "b": false, "s": "null"}]}',
     {"predictions": [{"f32_out": "NaN", "f64_out": "-Infinity", "i32_out": 1, "i64_out": 1,
                       "u8_out": 1, "i8_out": 1, "b_out": False, "s_out": "null"}]}),
    ("tf1_graph", "tf1_graph", {"instances": [1.0, 2.0]}, {"predictions": [4.0, 7.0]}),
]

PREDICT_ERRORS = [  # (id, model path, body, status, message)
    ("unknown_model", "nope", {"instances": [1.0]}, 404,
     "Servable not found for request: Latest(nope)"),
    ("unknown_version", "half_plus_two/versions/99", {"instances": [1.0]}, 404,
     "Servable not found for request: Specific(half_plus_two, 99)"),
    ("unknown_label", "half_plus_two/labels/x", {"instances": [1.0]}, 400,
     "Unrecognized servable version label: x"),
    ("version_overflow", "half_plus_two/versions/99999999999999999999", {"instances": [1.0]},
     400, "Failed to convert version: 99999999999999999999 to numeric."),
    ("unknown_signature", "half_plus_two", {"signature_name": "nope", "instances": [1.0]}, 400,
     'Serving signature name: "nope" not found in signature def'),
    ("signature_name_not_string", "half_plus_two", {"instances": [1.0], "signature_name": 5},
     400, _doc_error({"instances": [1.0], "signature_name": 5}, "not formatted correctly. "
                     "'signature_name' key must be a string value.")),
    ("empty_body", "half_plus_two", b"", 400, "JSON Parse error: The document is empty"),
    ("invalid_json", "half_plus_two", "nonsense", 400,
     "JSON Parse error: Invalid value. at offset: 0"),
    ("truncated_json", "half_plus_two", '{"instances": [1.0', 400,
     "JSON Parse error: Missing a comma or ']' after an array element. at offset: 18"),
    ("not_an_object", "half_plus_two", [1, 2], 400, "JSON Value: [1,2] Is not object"),
    ("both_keys", "half_plus_two", {"inputs": [1.0], "instances": [1.0]}, 400,
     _doc_error({"inputs": [1.0], "instances": [1.0]}, "Not formatted correctly expecting "
                "only one of 'inputs' or 'instances' keys to exist ")),
    ("neither_key", "half_plus_two", {"signature_name": "serving_default"}, 400,
     "Missing 'inputs' or 'instances' key"),
    ("instances_not_list", "half_plus_two", {"instances": 1.0}, 400,
     _doc_error({"instances": 1.0}, "Expecting 'instances' to be an list/array")),
    ("instances_empty", "half_plus_two", {"instances": []}, 400,
     _doc_error({"instances": []}, "No values in 'instances' array")),
    # TF Serving parses the body, then finds model and signature, then reads the tensors.
    ("bad_json_before_model", "nope", '{"instances": [1.0]', 400,
     "JSON Parse error: Missing a comma or '}' after an object member. at offset: 19"),
    ("model_before_tensors", "nope", {}, 404, "Servable not found for request: Latest(nope)"),
    ("signature_before_tensors", "half_plus_two", {"signature_name": "nope", "instances": 5},
     400, 'Serving signature name: "nope" not found in signature def'),
    ("wrong_dtype_row", "half_plus_two", {"instances": ["x"]}, 400,
     _elem(0, 'JSON Value: "x" Type: String is not of expected type: float')),
    ("wrong_dtype_columnar", "half_plus_two", {"inputs": ["x"]}, 400,
     'JSON Value: "x" Type: String is not of expected type: float'),
    ("missing_input_row", "multi_signature", {"signature_name": SP, "instances": [{"a": 1.0}]},
     400, "Failed to process element: 0 of 'instances' list. JSON object: {\"a\":1.0} keys "
     "must be equal to: a,b"),
    ("missing_input_columnar", "multi_signature",
     {"signature_name": SP, "inputs": {"a": [1.0]}}, 400,
     "Missing named input: b in 'inputs' object."),
    ("unknown_key_row", "multi_signature",
     {"signature_name": SP, "instances": [{"a": 1.0, "b": 2.0, "c": 3.0}]}, 400,
     _elem(0, "JSON object: does not have named input: c", "c")),
    ("plain_rows_two_inputs", "multi_signature", {"signature_name": SP, "instances": [1.0]},
     400, "instances is a plain list, but expecting list of objects as multiple input tensors "
     "required as per tensorinfo_map"),
    ("plain_value_two_inputs", "multi_signature", {"signature_name": SP, "inputs": [1.0]},
     400, "inputs is a plain value/list, but expecting an object as multiple input tensors "
     "required as per tensorinfo_map"),
    ("object_after_values", "half_plus_two", {"instances": [1.0, {"x": 2.0}]}, 400,
     "Expecting value/list but got object at item 1 of input list"),
    ("value_after_objects", "half_plus_two", {"instances": [{"x": 2.0}, 1.0]}, 400,
     "Expecting object but got list at item 1 of input list"),
    ("ragged_size", "many_outputs", {"instances": [[1, 2, 3], [4, 5, 6], [7, 8]]}, 400,
     _elem(2, "Expecting tensor size: 3 but got: 2")),
    ("ragged_shape", "many_outputs", {"instances": [[1, 2, 3], [[4, 5, 6]]]}, 400,
     _elem(1, "Expecting shape [3] but got: [1,3]")),
    ("ragged_columnar", "many_outputs", {"inputs": [[1.0, 2.0, 3.0], [1.0, 2.0]]}, 400,
     "Encountered list at unexpected size: 2 at level: 1 expected size: 3"),
    # Declared shapes are not enforced (TF Serving feeds by tensor name): [1, 2] into [-1, 3]
    # computes, and what the graph cannot compute fails in the kernel's words.
    ("undeclared_shape_computes", "many_outputs",
     {"inputs": [[1.0, 5.0]]}, 200,
     {"outputs": {"sum": [6.0], "max": [5.0], "argmax": [1], "scaled": [[10.0, 50.0]]}}),
    ("int_rejects_decimal", "dtypes", _dtypes(i32=[1.0]), 400,
     "JSON Value: 1.0 Type: Number is not of expected type: int32"),
    ("int64_rejects_decimal", "dtypes", _dtypes(i64=[1.5]), 400,
     "JSON Value: 1.5 Type: Number is not of expected type: int64"),
    ("int32_overflow", "dtypes", _dtypes(i32=[2147483648]), 400,
     "JSON Value: 2147483648 Type: Number is not of expected type: int32"),
    ("bool_rejects_1", "dtypes", _dtypes(b=[1]), 400,
     "JSON Value: 1 Type: Number is not of expected type: bool"),
    ("bool_rejects_0_row", "dtypes",
     {"instances": [{**{k: v[0] for k, v in DTYPE_INPUTS.items()}, "b": 0}]}, 400,
     _elem(0, "JSON Value: 0 Type: Number is not of expected type: bool", "b")),
    ("string_rejects_number", "dtypes", _dtypes(s=[1]), 400,
     "JSON Value: 1 Type: Number is not of expected type: string"),
    ("float_rejects_b64", "dtypes", _dtypes(f32=[{"b64": "AA=="}]), 400,
     'JSON Value: {"b64":"AA=="} Type: Object is not of expected type: float'),
    ("bad_base64", "dtypes", _dtypes(s=[{"b64": "!!"}]), 400, "Unable to base64 decode"),
]

EXAMPLES_CASES = [  # (id, "<model path>:<verb>", body, status, expected)
    ("classify", "half_plus_two:classify",
     {"signature_name": CLASSIFY, "examples": [{"x": 1.0}, {"x": 4.0}]}, 200,
     {"results": [[["", 2.5]], [["", 4.0]]]}),
    ("regress", "half_plus_two:regress",
     {"signature_name": REGRESS, "examples": [{"x": 1.0}, {"x": 4.0}]}, 200,
     {"results": [2.5, 4.0]}),
    ("regress_version", "half_plus_two/versions/1:regress",
     {"signature_name": REGRESS, "examples": [{"x": [-2.0]}]}, 200, {"results": [1.0]}),
    ("regress_context", "half_plus_two:regress",
     {"signature_name": REGRESS, "context": {"x": 10.0}, "examples": [{}, {"y": 1.0}]}, 200,
     {"results": [7.0, 7.0]}),
    ("example_overrides_context", "half_plus_two:classify",
     {"signature_name": CLASSIFY, "context": {"x": 10.0}, "examples": [{"x": 4.0}]}, 200,
     {"results": [[["", 4.0]]]}),
    ("regress_nan_infinity", "half_plus_two:regress", '{"signature_name": "regress_x_to_y", '
     '"examples": [{"x": NaN}, {"x": Infinity}, {"x": -Infinity}]}', 200,
     {"results": ["NaN", "Infinity", "-Infinity"]}),
    # TF Serving says "classify" for :regress too (util/json_tensor.cc).
    ("missing_examples_classify", "half_plus_two:classify", {"signature_name": CLASSIFY}, 400,
     _doc_error({"signature_name": CLASSIFY}, MISSING_EXAMPLES)),
    ("missing_examples_regress", "half_plus_two:regress", {"signature_name": REGRESS}, 400,
     _doc_error({"signature_name": REGRESS}, MISSING_EXAMPLES)),
    ("examples_not_list", "half_plus_two:regress", {"examples": {"x": 1.0}}, 400,
     _doc_error({"examples": {"x": 1.0}}, "Expecting 'examples' value to be an list/array")),
    ("examples_empty", "half_plus_two:regress", {"examples": []}, 400,
     _doc_error({"examples": []}, "'examples' value is an empty array")),
    ("example_not_object", "half_plus_two:regress", {"examples": [1.0]}, 400,
     "Example must be JSON object but got JSON Number"),
    ("example_true", "half_plus_two:classify", {"examples": [True]}, 400,
     "Example must be JSON object but got JSON True"),
    ("context_checked_first", "half_plus_two:regress", {"context": [1]}, 400,
     "Example must be JSON object but got JSON Array"),
    ("null_feature", "half_plus_two:regress", {"examples": [{"x": None}]}, 400,
     "Feature: x has element with unexpected JSON type: Null"),
    ("mixed_feature", "half_plus_two:regress", {"examples": [{"x": [1.0, 2]}]}, 400,
     "Unexpected element type in feature: x expecting type: float"),
    ("uint64_feature", "half_plus_two:regress", {"examples": [{"x": 18446744073709551615}]},
     400, "Feature: x has uint64_t element. Only int64_t is supported."),
    ("signature_name_null", "half_plus_two:classify",
     {"signature_name": None, "examples": [{}]}, 400,
     _doc_error({"signature_name": None, "examples": [{}]}, "not formatted correctly. "
                "'signature_name' key must be a string value.")),
    ("unknown_signature_classify", "half_plus_two:classify",
     {"signature_name": "nope", "examples": [{"x": 1.0}]}, 400,
     "No signature was found with the name: nope"),
    ("unknown_signature_regress", "half_plus_two:regress",
     {"signature_name": "nope", "examples": [{"x": 1.0}]}, 400,
     "No signature was found with the name: nope"),
    ("two_inputs", "multi_signature:classify", {"signature_name": SP, "examples": [{}]}, 400,
     "Expected one input Tensor."),
    ("four_outputs", "many_outputs:classify", {"examples": [{}]}, 400,
     "Expected one or two output Tensors, found 4"),
    ("unknown_model", "nope:classify", {"examples": [{"x": 1.0}]}, 404,
     "Servable not found for request: Latest(nope)"),
    ("unknown_label", "half_plus_two/labels/x:regress", {"examples": [{"x": 1.0}]}, 400,
     "Unrecognized servable version label: x"),
]

CASES = [
    *STATUS_CASES, *TRANSPORT_CASES,
    *((f"predict_{i}", f"POST /v1/models/{m}:predict", b, 200, e) for i, m, b, e in PREDICT_OK),
    *((f"predict_{i}", f"POST /v1/models/{m}:predict", *rest) for i, m, *rest in PREDICT_ERRORS),
    *((f"examples_{i}", f"POST /v1/models/{p}", *rest) for i, p, *rest in EXAMPLES_CASES),
]


@pytest.mark.parametrize(("request_line", "body", "status", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rest(engine, request_line, body, status, expected):
    got = send_json(engine, request_line, body)
    assert got == (status, {"error": expected} if isinstance(expected, str) else expected)


@pytest.mark.parametrize(("model", "request_line"), [
    ("half_plus_two", f"GET {HPT}/metadata"),
    ("multi_signature", "GET /v1/models/multi_signature/versions/1/metadata"),
])
def test_metadata(engine, test_models, model, request_line):
    status, got = send_json(engine, request_line)
    defs = {key: json_format.MessageToDict(value, preserving_proto_field_name=True,
                                           always_print_fields_with_no_presence=True)
            for key, value in _signature_defs(test_models[model]).items()}
    assert status == 200
    assert got == {"model_spec": {"name": model, "signature_name": "", "version": "1"},
                   "metadata": {"signature_def": {"signature_def": defs}}}
    default = got["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert default["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert default["inputs"]["x"]["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}],
                                                      "unknown_rank": False}
    assert (default["method_name"], default["defaults"]) == ("tensorflow/serving/predict", {})


@pytest.mark.parametrize(("verb", "signature", "kind"), [
    ("classify", "", "No classification inputs"),
    ("regress", "", "No regression inputs"),
    ("regress", CLASSIFY, "No regression outputs"),
])
def test_classify_regress_signature_mismatch(engine, test_models, verb, signature, kind):
    """classifier.cc / regressor.cc quote the SignatureDef's DebugString (text format); on
    half_plus_two, serving_default's input is ``x``, not ``inputs``."""
    definition = _signature_defs(test_models["half_plus_two"])[signature or "serving_default"]
    body = {"examples": [{"x": 1.0}], **({"signature_name": signature} if signature else {})}
    message = f"{kind} found in SignatureDef: {text_format.MessageToString(definition)}"
    assert send_json(engine, f"POST {HPT}:{verb}", body) == (400, {"error": message})


def test_regress_int_feature_fails_in_tensorflow(engine):
    """``{"x": 2}`` is an int64 feature; the model parses a float one, so TensorFlow refuses."""
    status, got = send_json(engine, f"POST {HPT}:regress",
                        {"signature_name": REGRESS, "examples": [{"x": 2}]})
    assert status == 400
    assert "Data types don't match. Data type: int64 but expected type: float" in got["error"]


def test_model_list(engine, test_models):
    """Beyond TensorFlow Serving (which answers 400 "Missing model name in request."): every
    configured model in config order, each in the shape of its status response."""
    status, doc = send_json(engine, "GET /v1/models")
    assert status == 200 and [m["name"] for m in doc["models"]] == list(test_models)
    entry = next(m for m in doc["models"] if m["name"] == "half_plus_two")
    assert entry == {"name": "half_plus_two", **AVAILABLE_V1, "version_labels": {}}


@pytest.mark.parametrize("path", ["/v2/models/half_plus_two:predict", "/", "/v1"])
def test_outside_v1_is_a_plain_404(engine, path):
    status, content_type, raw = send(engine, f"POST {path}", {"instances": [1.0]})
    assert status == 404
    assert not content_type.startswith("application/json")
    with pytest.raises(ValueError):
        json.loads(raw)


@pytest.mark.parametrize(("body", "status", "expected"), [
    (gzip.compress(b'{"instances": [1.0, 2.0]}'), 200, {"predictions": [2.5, 3.0]}),
    # TF Serving reads a body that does not gunzip as empty (evhttp_request.cc).
    (b'{"instances": [1.0]}', 400, {"error": "JSON Parse error: The document is empty"}),
], ids=["gzip", "not_gzip"])
def test_gzip_request_body(engine, body, status, expected):
    got = send_json(engine, f"POST {HPT}:predict", body, {"Content-Encoding": "gzip"})
    assert got == (status, expected)


@pytest.mark.parametrize(("path", "expected"), [("/healthz", {"status": "alive"}),
                                                ("/readyz", {"status": "ready"})])
def test_health(engine, path, expected):
    status, content_type, raw = send(engine, f"GET {path}")
    assert (status, json.loads(raw)) == (200, expected)
    assert content_type.startswith("application/json")
