"""The engine starts, serves every test model over both APIs, and stops cleanly."""

from __future__ import annotations

from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.helpers import http_json
from tf_serving_platform.serving import codec


def test_rest_predict_half_plus_two(engine):
    answer = http_json(f"{engine.rest_url}/v1/models/half_plus_two:predict",
                       {"instances": [1.0, 2.0, 5.0]})
    assert answer == (200, {"predictions": [2.5, 3.0, 4.5]})


def test_grpc_predict_tf1_graph(engine):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(engine.channel())
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tf1_graph"
    request.inputs["x"].CopyFrom(codec.ndarray_to_tensor_proto(
        __import__("numpy").array([1.0, 2.0], "float32")))
    response = stub.Predict(request, timeout=10)
    assert list(response.outputs["y"].float_val) == [4.0, 7.0]
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
