"""TLS for both front ends from TensorFlow Serving's ``SSLConfig`` (PEM strings, not paths):
gRPC exactly as ``--ssl_config_file`` does, REST with the same key pair (which TensorFlow
Serving cannot do). ``client_verify`` asks every client for a certificate signed by
``custom_ca`` (mutual TLS)."""

from __future__ import annotations

import datetime
import os
import ssl
import tempfile

import grpc
from cryptography import x509


class CertificateError(ValueError):
    """The server certificate cannot serve now: every client's handshake would fail."""


def check_validity(config) -> None:
    """Refuse a server certificate that has expired or is not valid yet, at start (TensorFlow
    Serving starts and reports ready, then fails every TLS handshake).

    Raises:
        CertificateError: with the certificate's subject and dates.
    """
    now = datetime.datetime.now(datetime.UTC)
    try:
        cert = x509.load_pem_x509_certificate(config.server_cert.encode())
    except ValueError as e:
        raise CertificateError(f"ssl_config_file: server_cert is not a PEM certificate: {e}") \
            from None
    subject = cert.subject.rfc4514_string()
    if now > cert.not_valid_after_utc:
        raise CertificateError(f"ssl_config_file: the server certificate ({subject}) expired "
                               f"on {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC; renew it")
    if now < cert.not_valid_before_utc:
        raise CertificateError(f"ssl_config_file: the server certificate ({subject}) is not "
                               f"valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC "
                               "(is this machine's clock right?)")


def grpc_credentials(config) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(config.server_key.encode(), config.server_cert.encode())],
        root_certificates=config.custom_ca.encode() or None,
        require_client_auth=config.client_verify)


def rest_ssl_context(config) -> ssl.SSLContext:
    """An SSLContext for aiohttp; the key only touches disk in a private, removed temp dir."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as folder:
        cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        for path, text in ((cert, config.server_cert), (key, config.server_key)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(descriptor, "w") as out:
                out.write(text)
        context.load_cert_chain(cert, key)
    if config.custom_ca:
        context.load_verify_locations(cadata=config.custom_ca)
    if config.client_verify:
        context.verify_mode = ssl.CERT_REQUIRED
    return context
