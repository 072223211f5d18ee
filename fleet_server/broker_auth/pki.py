"""The broker's TLS: a certificate authority the server creates, and the broker certificate it signs.

Devices get the CA certificate (``ca.pem``) and verify the broker against it; the CA key never leaves the server's
folder (mode 0600). Both are created once and kept: a new CA would cut off every device holding the old one.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleet_server.broker_auth._files import write_private

__all__ = ["BrokerTls", "ensure_broker_tls"]

log = logging.getLogger(__name__)

_CA_DAYS: Final = 10 * 365
_CERT_DAYS: Final = 825  # the longest validity clients such as Apple's still accept for a server certificate


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """The PEM files of the broker's TLS: the CA certificate devices trust, the broker's certificate and key."""

    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path


def ensure_broker_tls(folder: Path, hostnames: list[str]) -> BrokerTls:
    """Create the CA and a broker certificate for ``hostnames`` in ``folder`` unless they exist; keys mode 0600.

    The broker certificate is issued again when its names no longer match ``hostnames``.
    """
    tls = BrokerTls(folder / "ca.pem", folder / "ca.key", folder / "broker.pem", folder / "broker.key")
    if not (tls.ca_cert.is_file() and tls.ca_key.is_file()):
        _write_ca(tls)
    if not (tls.cert.is_file() and tls.key.is_file()) or _names(tls.cert) != sorted(hostnames):
        _write_broker_cert(tls, hostnames)
    return tls


def _write_ca(tls: BrokerTls) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgefleet broker CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(tls.ca_key, _pem_key(key))
    write_private(tls.ca_cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    log.info("broker_tls.ca_created", extra={"path": str(tls.ca_cert)})


def _write_broker_cert(tls: BrokerTls, hostnames: list[str]) -> None:
    ca_key = serialization.load_pem_private_key(tls.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{tls.ca_key} is not the EC key edgefleet creates; move it away to create a new CA")
    ca_cert = x509.load_pem_x509_certificate(tls.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=_CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hostnames]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_private(tls.key, _pem_key(key))
    write_private(tls.cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    log.info("broker_tls.certificate_issued", extra={"path": str(tls.cert), "hostnames": hostnames})


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _general_name(hostname: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        return x509.DNSName(hostname)


def _names(cert_path: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(
        [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] + names.get_values_for_type(x509.DNSName)
    )
