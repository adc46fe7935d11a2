"""Mutual TLS for a test Docker engine on `tcp://`, as Docker's "Protect the Docker daemon socket" guide
sets it up: a CA of our own; the engine's certificate (serverAuth, for 127.0.0.1) and a client's
(clientAuth), both signed by it; `dockerd --tlsverify` accepts only clients with a certificate of that CA.
`stranger` is a client certificate of another CA, for the refusal."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(directory: Path, stem: str, cert: x509.Certificate, key) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}-cert.pem", directory / f"{stem}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def _issue(subject: str, issuer: tuple[x509.Name, object] | None, usage, ca: bool = False):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def engine_certificates(directory: Path) -> dict[str, Path]:
    """ca, server-cert/-key (the engine's), client-cert/-key (a client's), stranger-ca and stranger-cert/-key
    (another CA and a client of it)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _issue("durable-rollouts test engine CA", None, None, ca=True)
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths = {"ca": directory / "ca.pem"}
    for stem, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        paths[f"{stem}-cert"], paths[f"{stem}-key"] = _write(directory, stem, *_issue(stem, (ca_cert.subject, ca_key),
                                                                                      usage))
    other_ca, other_key = _issue("another CA", None, None, ca=True)
    (directory / "stranger-ca.pem").write_bytes(other_ca.public_bytes(serialization.Encoding.PEM))
    paths["stranger-ca"] = directory / "stranger-ca.pem"
    paths["stranger-cert"], paths["stranger-key"] = _write(
        directory, "stranger", *_issue("stranger", (other_ca.subject, other_key), ExtendedKeyUsageOID.CLIENT_AUTH))
    return paths
