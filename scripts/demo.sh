#!/usr/bin/env bash
# The platform end to end on one machine: train and export the digits CNN (two versions, with
# TFLite variants), serve it with the embedded engine, query REST and gRPC, publish a third
# version while serving and watch it roll in without a failed request.
set -euo pipefail
export TF_CPP_MIN_LOG_LEVEL=2
BIN=${BIN:-.venv/bin}
DEMO=${DEMO:-demo-output}
MODELS="$PWD/$DEMO/models"
REST_PORT=${REST_PORT:-8501}
GRPC_PORT=${GRPC_PORT:-8500}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$DEMO"
step "export two versions of digits_cnn with fp16, dynamic and int8 TFLite variants"
"$BIN/servectl" export digits_cnn --base-path "$MODELS" --tflite fp16,dynamic,int8
"$BIN/servectl" export digits_cnn --base-path "$MODELS" --tflite fp16,dynamic,int8 --seed 7
"$BIN/servectl" inspect "$MODELS/digits_cnn"

step "serve it: servectl serve (TensorFlow Serving's flags), REST :$REST_PORT, gRPC :$GRPC_PORT"
"$BIN/servectl" serve --port="$GRPC_PORT" --rest_api_port="$REST_PORT" \
  --model_name=digits_cnn --model_base_path="$MODELS/digits_cnn" \
  --monitoring_config_file=serving/config/monitoring.config > "$DEMO/serve.log" 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
until curl -sf "localhost:$REST_PORT/readyz" >/dev/null; do sleep 0.5; done
curl -s "localhost:$REST_PORT/v1/models/digits_cnn"

step "query over REST: one blank 8x8x1 uint8 image"
BODY=$("$BIN/python" -c 'import json; print(json.dumps({"instances": [[[[0]] * 8] * 8]}))')
curl -s -d "$BODY" "localhost:$REST_PORT/v1/models/digits_cnn:predict"; echo

step "query over gRPC (tensorflow-serving-api stubs)"
quiet() { grep -v -e '^I0000' -e '^E0000' -e '^WARNING: All log messages' -e '^To enable' || true; }
"$BIN/python" - "$GRPC_PORT" 2> >(quiet >&2) <<'PY'
import sys, grpc, numpy as np
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tf_serving_platform.serving import codec
from tf_serving_platform.models.data import digits_images
stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"localhost:{sys.argv[1]}"))
images = digits_images().x_test["image"][:5]
request = predict_pb2.PredictRequest()
request.model_spec.name = "digits_cnn"
request.inputs["image"].CopyFrom(codec.ndarray_to_tensor_proto(images))
response = stub.Predict(request, timeout=10)
probabilities = codec.tensor_proto_to_ndarray(response.outputs["probabilities"])
print("served version", response.model_spec.version.value, "predicted", probabilities.argmax(1).tolist(),
      "true", digits_images().y_test["probabilities"][:5].tolist())
PY

step "publish version 3 while serving; the engine picks it up within one poll"
"$BIN/servectl" export digits_cnn --base-path "$MODELS" --seed 11 --quiet
until curl -s "localhost:$REST_PORT/v1/models/digits_cnn" | grep -q '"version": "3"'; do sleep 0.5; done
curl -s "localhost:$REST_PORT/v1/models/digits_cnn"

step "metrics (Prometheus text, TensorFlow Serving's names)"
curl -s "localhost:$REST_PORT/monitoring/prometheus/metrics" | grep -E '^:tensorflow:serving:request_count|^:platform:versions_loaded'
