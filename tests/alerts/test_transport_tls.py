"""Pinning and TLS together: connect to the checked IP, verify the certificate for the name.

A certificate authority made for the test signs a certificate for
``tls.example.com``; the receiver serves it on 127.0.0.1, and the fake
resolver sends the name there. The client must connect to the pinned IP yet
send SNI for, and check the certificate against, the name in the URL.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerts.transports import http
from alerts.transports.base import TransportError
from alerts.transports.webhook import WebhookTransport
from tests.alerts.messages import fired
from tests.alerts.receiver import Receiver

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

SECRET = "s3cret-s3cret-s3cret"


def name(common_name: str) -> Any:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def certificate(subject: Any, issuer: Any, key: Any, signer: Any, **kind: Any) -> Any:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
    )
    if "dns" in kind:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(kind["dns"])]), critical=False
        )
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
    return builder.sign(signer, hashes.SHA256())


def pem(cert: Any) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def tls_receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate(name("Labbook test CA"), name("Labbook test CA"), ca_key, ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(name("tls.example.com"), ca.subject, key, ca_key, dns="tls.example.com")
    (tmp_path / "cert.pem").write_bytes(pem(cert))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cadata=pem(ca).decode())
    monkeypatch.setattr(http, "VERIFY", client)
    with Receiver(tls=server) as receiver:
        yield receiver


def test_it_connects_to_the_pinned_ip_and_verifies_the_name(
    tls_receiver: Receiver, allow_private: Any, fake_dns: Any
) -> None:
    fake_dns.answer("tls.example.com", ["127.0.0.1"], ["10.255.255.1"])
    config = {"url": f"https://tls.example.com:{tls_receiver.port}/hook", "secret": SECRET}
    assert WebhookTransport().send(fired(), config).status_code == 200
    [request] = tls_receiver.requests
    assert request.headers["host"] == f"tls.example.com:{tls_receiver.port}"
    assert fake_dns.lookups == ["tls.example.com"]


def test_a_certificate_for_another_name_is_refused(
    tls_receiver: Receiver, allow_private: Any, fake_dns: Any
) -> None:
    fake_dns.answer("impostor.example.com", ["127.0.0.1"])
    config = {"url": f"https://impostor.example.com:{tls_receiver.port}/hook", "secret": SECRET}
    with pytest.raises(TransportError, match="certificate"):
        WebhookTransport().send(fired(), config)
    assert tls_receiver.requests == []
