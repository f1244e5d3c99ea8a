"""The controller's TLS material: a CA of its own and a server certificate it
signs, made in the data dir on first start, or an operator's own pair.

Why a CA and not one self-signed certificate: clients (the CLI, agents,
Prometheus) trust the CA once, and the server certificate can be issued
again (another address to serve on, expiry) without any of them noticing.
Agents learn the CA on the wire and trust it only if its SHA-256 matches
the pin their boot script carries (``ca_pin``), as kubeadm's joining nodes
do; an attacker who could answer in the controller's place cannot forge a
CA with the same digest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_YEARS = 10
SERVER_DAYS = 397
"""The longest a server certificate may live that browsers accept."""
RENEW_BEFORE = dt.timedelta(days=30)


class TlsError(ValueError):
    """TLS material that cannot be used, with the file named."""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    ca: Path | None
    """The CA clients are to trust; None when the operator brought a
    certificate signed by a CA voe does not hold."""

    def pin(self) -> str | None:
        return ca_pin(self.ca) if self.ca is not None else None


def ca_pin(ca: Path) -> str:
    """SHA-256 of the CA certificate's DER encoding, in hex."""
    return hashlib.sha256(_load_cert(ca).public_bytes(serialization.Encoding.DER)).hexdigest()


def own(cert: Path, key: Path, ca: Path | None = None) -> TlsFiles:
    """An operator's certificate and key, checked to be a pair."""
    c = _load_cert(cert)
    try:
        k = serialization.load_pem_private_key(key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise TlsError(f"--tls-key {key}: not a readable, unencrypted PEM private key ({e})") from None
    if c.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            k.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise TlsError(f"--tls-key {key} is not the key of --tls-cert {cert}")
    return TlsFiles(cert, key, ca)


def ensure(directory: Path, names: list[str]) -> TlsFiles:
    """The data dir's CA and server certificate, made when missing; the
    server certificate is issued again when it does not cover ``names``
    (host names or addresses) or nears its end. The CA is never replaced:
    agents and operators trust it."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_cert, ca_key = directory / "ca.pem", directory / "ca-key.pem"
    cert, key = directory / "server.pem", directory / "server-key.pem"
    if not ca_cert.exists() or not ca_key.exists():
        _write_ca(ca_cert, ca_key)
    wanted = _alt_names(names)
    if not cert.exists() or not key.exists() or not _covers(_load_cert(cert), wanted):
        _write_server(cert, key, ca_cert, ca_key, wanted)
    return TlsFiles(cert, key, ca_cert)


def default_names(host: str, *urls_hosts: str) -> list[str]:
    """What a server certificate should name: the listening address (all of
    this machine's names when it listens everywhere), loopback, and the
    hosts of the URLs clients are given."""
    names = ["localhost", "127.0.0.1", "::1", *[h for h in urls_hosts if h]]
    if host in ("0.0.0.0", "::", ""):
        names += [socket.gethostname(), socket.getfqdn()]
    else:
        names.append(host)
    return list(dict.fromkeys(names))


def _alt_names(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in dict.fromkeys(names):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def _covers(cert: x509.Certificate, wanted: list[x509.GeneralName]) -> bool:
    if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < RENEW_BEFORE:
        return False
    try:
        have = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return False
    return set(wanted) <= have


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as e:
        raise TlsError(f"{path}: not a readable PEM certificate ({e})") from None


def _write_ca(cert_path: Path, key_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"voe controller CA ({socket.gethostname()})")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write_private(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_server(cert_path: Path, key_path: Path, ca_cert_path: Path, ca_key_path: Path,
                  names: list[x509.GeneralName]) -> None:
    ca = _load_cert(ca_cert_path)
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "voe controller")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_private(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Mode 0600 from its first byte."""
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
