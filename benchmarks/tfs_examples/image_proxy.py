"""An HTTPS proxy that answers every GET with one local image, for the unchanged ResNet clients.

``resnet_client.py`` and ``resnet_client_grpc.py`` fetch ``IMAGE_URL``
(``https://tensorflow.org/images/blogs/serving/cat.jpg``) with ``requests``; the REST client has
no flag for a local file, and the gRPC client's ``--image`` flag crashes when the model does
not take JPEGs (it then reads ``dl_request``, which only the download branch sets). What the
clients' own code does allow is ``requests``' environment: ``HTTPS_PROXY`` sends the download
through this proxy, and ``REQUESTS_CA_BUNDLE`` trusts the certificate it presents for the
requested host (made here with ``openssl``, valid two days). Nothing leaves the machine.

    python -m benchmarks.tfs_examples.image_proxy --image cat.jpg --cert-dir DIR --port-file F
"""

from __future__ import annotations

import argparse
import socketserver
import ssl
import subprocess
import sys
from pathlib import Path

HOSTS = ("tensorflow.org", "www.tensorflow.org", "storage.googleapis.com")


def make_certificate(cert_dir: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``HOSTS``; returns ``(cert, key)``. The certificate is
    also the CA bundle the client trusts."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    cert, key = cert_dir / "cert.pem", cert_dir / "key.pem"
    names = ",".join(f"DNS:{h}" for h in HOSTS)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=tensorflow.org",
                    "-addext", f"subjectAltName={names}",
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,digitalSignature,keyCertSign"],
                   check=True, capture_output=True)
    return cert, key


def _read_head(stream) -> str:
    """The request line of an HTTP request; its headers are read and dropped."""
    line = stream.readline().decode("latin-1").strip()
    while stream.readline() not in (b"\r\n", b"\n", b""):
        pass
    return line


class _Handler(socketserver.StreamRequestHandler):
    image: bytes
    tls: ssl.SSLContext

    def handle(self) -> None:
        method, target, _ = _read_head(self.rfile).split(" ", 2)
        connection, stream = self.connection, self.rfile
        if method == "CONNECT":  # https: answer the tunnel, then speak TLS as the target host
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            connection = self.tls.wrap_socket(self.connection, server_side=True)
            stream = connection.makefile("rb")
            inner_method, path, _ = _read_head(stream).split(" ", 2)
            target = f"https://{target.split(':')[0]}{path}"
            method = inner_method
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close"
                           b"\r\nContent-Length: %d\r\n\r\n" % len(self.image) + self.image)
        print(f"image_proxy: {method} {target} -> local image ({len(self.image)} bytes)",
              file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    """Serve until killed; the port goes to ``--port-file`` once the proxy listens."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tfs_examples.image_proxy")
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--cert-dir", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args(argv)
    cert, key = make_certificate(args.cert_dir)
    _Handler.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _Handler.tls.load_cert_chain(cert, key)
    _Handler.image = args.image.read_bytes()
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler) as server:
        args.port_file.write_text(str(server.server_address[1]))
        server.serve_forever()


if __name__ == "__main__":
    main()
