# -*- test-case-name: tests.sim.test_tls -*-
"""The self-signed certificate simulated speakers serve HTTPS (port 1443) with.

Real speakers answer TLS on 1443 with a certificate no client can verify (PC2Sonos PR #2 sends
its SOAP there with verification off). One certificate is made per process, the first time a
speaker needs it, with ``cryptography``: an EC P-256 key (fast to make), valid from a day ago
for ten years, named ``localhost`` and 127.0.0.1 (clients do not verify it; every speaker of
the process shares it). Nothing is read from or written to disk, and nothing leaves the
machine.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet.ssl import CertificateOptions, PrivateCertificate

COMMON_NAME = "Sonos household simulator"


def self_signed_pem(now: datetime.datetime | None = None) -> bytes:
    """A new self-signed certificate and its private key, PEM-encoded one after the other."""
    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


@functools.cache
def server_options() -> CertificateOptions:
    """The TLS server options every simulated speaker shares (made once per process).

    HTTP/1.1 is offered over ALPN: clients that ask for it (urllib3 2, so ``requests``) get a
    handshake failure from a server that offers no protocol at all.
    """
    certificate = PrivateCertificate.loadPEM(self_signed_pem())
    return CertificateOptions(
        privateKey=certificate.privateKey.original,
        certificate=certificate.original,
        acceptableProtocols=[b"http/1.1"],
    )
