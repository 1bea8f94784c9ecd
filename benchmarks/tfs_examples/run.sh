#!/usr/bin/env bash
# TensorFlow Serving's example clients (tensorflow_serving/example/), run UNCHANGED against
# `servectl serve`, with local stand-ins for what they would download.
#
#   benchmarks/tfs_examples/run.sh PYROOT        from the project root, after `make install`
#
# PYROOT is a directory holding TensorFlow Serving's tensorflow_serving/example/ (from a checkout
# of its repository, with __init__.py files so that Python finds it next to the installed
# tensorflow-serving-api): the clients are TensorFlow Serving's code, run from there with
# PYTHONPATH=PYROOT and never copied into the project. Work files and every log:
# $TFS_EXAMPLES_OUT (default /tmp/tfs-examples). About 3 minutes on 2 cores. Port 8501 must be
# free: resnet_client.py posts to the fixed http://localhost:8501/v1/models/resnet:predict.
#
#  1. MNIST: scikit-learn's digits at 28x28 as MNIST's gzipped IDX files in the client's
#     --work_dir (so mnist_input_data downloads nothing) and a softmax regression exported the
#     way mnist_saved_model.py does (models.py), written straight into its version directory
#     as mnist_saved_model.py writes its own; then TF Serving's mnist_saved_model.py itself,
#     unchanged, on the same files. Each is served as `mnist` and queried by mnist_client.py.
#  2. ResNet: Keras ResNet50 (random weights) with the clients' names input_1 -> activation_49,
#     published with `servectl export`, served as `resnet` (REST on 8501). The clients fetch
#     https://tensorflow.org/images/blogs/serving/cat.jpg with `requests`; HTTPS_PROXY and
#     REQUESTS_CA_BUNDLE (requests' own environment) send that to image_proxy.py, which answers
#     with a local JPEG. resnet_client_grpc.py is also run with its --image flag, which crashes
#     in the client itself when MODEL_ACCEPT_JPG is False (shown, not counted as a failure).
set -euo pipefail
ROOT=$PWD
PY=$ROOT/.venv/bin/python
SERVECTL=$ROOT/.venv/bin/servectl
[ $# -ge 1 ] || { echo "usage: $0 PYROOT (a directory holding tensorflow_serving/example/)"; exit 2; }
SUITE=$(cd "$1" && pwd)
EXAMPLES=$SUITE/tensorflow_serving/example
OUT=${TFS_EXAMPLES_OUT:-/tmp/tfs-examples}
[ -x "$SERVECTL" ] || { echo "no $SERVECTL: run from the project root after make install"; exit 2; }
[ -f "$EXAMPLES/mnist_client.py" ] || { echo "no example clients under $EXAMPLES"; exit 2; }
"$PY" -c 'import socket; socket.socket().bind(("0.0.0.0", 8501))' 2>/dev/null \
  || { echo "port 8501 is in use; resnet_client.py can only reach localhost:8501"; exit 2; }
rm -rf "$OUT"; mkdir -p "$OUT"
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1
CLIENT_ENV=(env PYTHONPATH="$SUITE")
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

free_port() { "$PY" -c 'from tf_serving_platform.servectl.engine_process import free_port; print(free_port())'; }

# serve NAME BASE_PATH GRPC_PORT REST_PORT: start `servectl serve`, wait for /readyz.
serve() {
  echo "\$ servectl serve --port=$3 --rest_api_port=$4 --model_name=$1 --model_base_path=$2"
  "$SERVECTL" serve --port="$3" --rest_api_port="$4" --model_name="$1" --model_base_path="$2" \
    > "$OUT/serve-$1-$3.log" 2>&1 &
  SERVER=$!; PIDS+=("$SERVER")
  for _ in $(seq 1500); do
    kill -0 "$SERVER" 2>/dev/null || { cat "$OUT/serve-$1-$3.log"; exit 1; }
    curl -sf "http://127.0.0.1:$4/readyz" > /dev/null && return 0
    sleep 0.2
  done
  echo "servectl serve not ready after 300 s; log: $OUT/serve-$1-$3.log"; exit 1
}

stop() { kill "$SERVER"; wait "$SERVER" || true; }

# client LOG COMMAND...: run an unchanged client from $OUT; keep all it prints in $OUT/LOG.log
# and show it without TensorFlow's native start-up lines (oneDNN, CUDA: "I0000 ... port.cc:153]").
TF_NOISE='^WARNING: All log messages before absl|^[IWE][0-9]{4} [0-9:.]+ +[0-9]+ [a-z_]+\.cc:[0-9]+\]'
client() {
  local log=$OUT/$1.log rc=0; shift
  echo "\$ ${*#"$ROOT/.venv/bin/"}" | sed "s|$SUITE|PYROOT|g" >&2
  (cd "$OUT" && "${CLIENT_ENV[@]}" "$@") > "$log" 2>&1 || rc=$?
  grep -v -E "$TF_NOISE" "$log" || true
  return "$rc"
}

echo "== 1. MNIST =="
"$PY" -m benchmarks.tfs_examples.models mnist "$OUT/mnist_data" "$OUT/models/mnist/1" \
  2> "$OUT/build-mnist.log"
client mnist_saved_model "$PY" "$EXAMPLES/mnist_saved_model.py" --training_iteration=1000 \
  --model_version=1 --work_dir="$OUT/mnist_data" "$OUT/models/mnist_tfs" > /dev/null
echo "(mnist_saved_model.py: $(grep -E '^training accuracy' "$OUT/mnist_saved_model.log"))"
GRPC=$(free_port); REST=$(free_port)
serve mnist "$OUT/models/mnist" "$GRPC" "$REST"
client mnist_client "$PY" "$EXAMPLES/mnist_client.py" --num_tests=100 \
  --server="127.0.0.1:$GRPC" --work_dir="$OUT/mnist_data"
client mnist_client_concurrent "$PY" "$EXAMPLES/mnist_client.py" --num_tests=500 \
  --concurrency=10 --server="127.0.0.1:$GRPC" --work_dir="$OUT/mnist_data"
stop
echo "-- the model TF Serving's mnist_saved_model.py exported --"
serve mnist "$OUT/models/mnist_tfs" "$GRPC" "$REST"
client mnist_client_tfs_model "$PY" "$EXAMPLES/mnist_client.py" --num_tests=100 \
  --server="127.0.0.1:$GRPC" --work_dir="$OUT/mnist_data"
stop

echo "== 2. ResNet =="
"$PY" -m benchmarks.tfs_examples.models resnet50 "$OUT/resnet50.keras" 2> "$OUT/build-resnet.log"
echo "\$ servectl export $OUT/resnet50.keras --base-path $OUT/models"
"$SERVECTL" export "$OUT/resnet50.keras" --base-path "$OUT/models" 2>&1 | grep -v -E "$TF_NOISE"
"$PY" -m benchmarks.tfs_examples.models jpeg "$OUT/cat.jpg"
"$PY" -m benchmarks.tfs_examples.image_proxy --image "$OUT/cat.jpg" --cert-dir "$OUT/proxy" \
  --port-file "$OUT/proxy.port" 2> "$OUT/image_proxy.log" &
PIDS+=("$!")
for _ in $(seq 100); do [ -s "$OUT/proxy.port" ] && break; sleep 0.1; done
CLIENT_ENV+=(HTTPS_PROXY="http://127.0.0.1:$(cat "$OUT/proxy.port")"
             REQUESTS_CA_BUNDLE="$OUT/proxy/cert.pem" NO_PROXY=localhost,127.0.0.1
             no_proxy=localhost,127.0.0.1)
echo "(HTTPS_PROXY=http://127.0.0.1:$(cat "$OUT/proxy.port") REQUESTS_CA_BUNDLE=$OUT/proxy/cert.pem)"
GRPC=$(free_port)
serve resnet "$OUT/models/resnet" "$GRPC" 8501
client resnet_client "$PY" "$EXAMPLES/resnet_client.py"
client resnet_client_grpc "$PY" "$EXAMPLES/resnet_client_grpc.py" --server="127.0.0.1:$GRPC"
client resnet_client_grpc_image "$PY" "$EXAMPLES/resnet_client_grpc.py" \
  --server="127.0.0.1:$GRPC" --image="$OUT/cat.jpg" | tail -3 \
  || echo "(exit $?: the client's own bug with --image when MODEL_ACCEPT_JPG is False)"
stop
sed 's/^/(/; s/$/)/' "$OUT/image_proxy.log"
"$PY" -m benchmarks.tfs_examples.models classify "$OUT/resnet50.keras" "$OUT/cat.jpg" 2> /dev/null
echo "logs: $OUT/*.log"
