"""TLS and mutual TLS for gRPC (TensorFlow Serving's --ssl_config_file) and REST, and health /
metrics on a separate admin address. Certificates are made by the openssl CLI for each run."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.helpers import metrics_page, serving
from tf_serving_platform.servectl.engine_process import free_port
from tf_serving_platform.serving import codec
from tf_serving_platform.serving.engine.config_protos import SSLConfig


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(folder) -> dict:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
            "-keyout", str(folder / "ca.key"), "-out", str(folder / "ca.pem"))
    for name, extension in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                            ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", str(folder / f"{name}.key"), "-out", str(folder / f"{name}.csr"))
        (folder / f"{name}.ext").write_text(extension + "\n")
        openssl("x509", "-req", "-in", str(folder / f"{name}.csr"), "-CA", str(folder / "ca.pem"),
                "-CAkey", str(folder / "ca.key"), "-CAcreateserial", "-days", "1",
                "-extfile", str(folder / f"{name}.ext"), "-out", str(folder / f"{name}.pem"))
    return {name: (folder / name).read_text() for name in
            ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


HANDSHAKE_S = 2


@pytest.fixture(scope="module")
def secured(test_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    pki = make_pki(folder)
    config = SSLConfig(server_key=pki["server.key"], server_cert=pki["server.pem"],
                       custom_ca=pki["ca.pem"], client_verify=True)
    (folder / "ssl.config").write_text(text_format.MessageToString(config))
    (folder / "monitoring.config").write_text("prometheus_config { enable: true }\n")
    admin = free_port()
    with serving("--model_name=half_plus_two", f"--model_base_path={test_models['half_plus_two']}",
                 f"--ssl_config_file={folder / 'ssl.config'}", "--rest_api_enable_ssl",
                 f"--admin_address=127.0.0.1:{admin}",
                 f"--monitoring_config_file={folder / 'monitoring.config'}",
                 f"--rest_api_idle_timeout_seconds={HANDSHAKE_S}", wait=None) as engine:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=2)
                break
            except OSError:
                assert engine.process.poll() is None, engine.log()
                time.sleep(0.2)
        yield engine, pki, folder, admin


def predict(channel) -> list[float]:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(codec.ndarray_to_tensor_proto(np.array([2.0], np.float32)))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    return list(stub.Predict(request, timeout=10).outputs["y"].float_val)


def test_grpc_mutual_tls(secured):
    engine, pki, _, _ = secured
    both = grpc.ssl_channel_credentials(pki["ca.pem"].encode(), pki["client.key"].encode(),
                                        pki["client.pem"].encode())
    assert predict(grpc.secure_channel(engine.grpc_target, both)) == [3.0]
    no_client_cert = grpc.ssl_channel_credentials(pki["ca.pem"].encode())
    with pytest.raises(grpc.RpcError) as refused:
        predict(grpc.secure_channel(engine.grpc_target, no_client_cert))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.RpcError):
        predict(grpc.insecure_channel(engine.grpc_target))


def rest_predict(engine, context: ssl.SSLContext) -> dict:
    request = urllib.request.Request(
        f"https://127.0.0.1:{engine.rest_port}/v1/models/half_plus_two:predict",
        json.dumps({"instances": [2.0]}).encode())
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        return json.loads(response.read())


def test_rest_mutual_tls(secured):
    engine, pki, folder, _ = secured
    context = ssl.create_default_context(cafile=str(folder / "ca.pem"))
    context.load_cert_chain(str(folder / "client.pem"), str(folder / "client.key"))
    assert rest_predict(engine, context) == {"predictions": [3.0]}
    without_cert = ssl.create_default_context(cafile=str(folder / "ca.pem"))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        rest_predict(engine, without_cert)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{engine.rest_port}/v1/models/half_plus_two",
                               timeout=5)


def test_health_and_metrics_live_on_the_admin_address_only(secured):
    engine, _, folder, admin = secured
    assert ":tensorflow:serving:request_count" in metrics_page(f"http://127.0.0.1:{admin}")
    context = ssl.create_default_context(cafile=str(folder / "ca.pem"))
    context.load_cert_chain(str(folder / "client.pem"), str(folder / "client.key"))
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"https://127.0.0.1:{engine.rest_port}/readyz", context=context,
                               timeout=5)
    assert missing.value.code == 404


def test_a_tls_handshake_that_never_starts_is_closed(secured):
    """Before: a connection to the TLS REST port that sent nothing held its socket for
    asyncio's default 60 s handshake timeout; now the idle timeout bounds it."""
    engine = secured[0]
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", engine.rest_port), timeout=50) as s:
        assert s.recv(1024) == b""
    assert time.monotonic() - started < 40
