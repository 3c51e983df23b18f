"""Certificates and secret files: shared by the exporter's listeners, the lab controller and clients.

A TCP listener is reachable from the network, so by default it has TLS. Without a
certificate of its own, it generates a self-signed one for the names a client may use to
reach it (`default_names`): localhost, the host's names and, for a wildcard listen address
such as ``0.0.0.0``, every address of the host. `generated_identity` keeps it in a state
directory and makes a new one when those names change (a laptop on another network).
Clients trust it by giving its PEM file (``--tls-ca``); `check_pem_certificates` tells a
file that is not one apart before gRPC sees it.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import grpc

__all__ = [
    "PEM_CERTIFICATE_MARKER",
    "GeneratedIdentity",
    "TlsIdentity",
    "certificate_names",
    "check_pem_certificates",
    "default_names",
    "generated_identity",
    "host_addresses",
    "write_secret",
]

PEM_CERTIFICATE_MARKER = b"-----BEGIN CERTIFICATE-----"

# Listen hosts that mean "every address of this host" (IPv4 only, or IPv6 and usually IPv4).
_WILDCARDS_V4 = ("", "0.0.0.0")
_WILDCARDS_V6 = ("::", "[::]")


def write_secret(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (0600), created so from the start."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.chmod(path, 0o600)  # also when the file existed with wider permissions


def check_pem_certificates(data: bytes, source: str) -> list[str]:
    """Check that `data` holds PEM certificates; return the names the first one is valid for.

    ValueError says what `source` (a file name, an option) holds instead and what to give.
    """
    from cryptography import x509

    if PEM_CERTIFICATE_MARKER not in data:
        if data.lstrip().startswith(b"-----BEGIN") and b"PRIVATE KEY" in data.split(b"\n", 1)[0]:
            what = "a private key"
        elif data[:1] == b"\x30":
            what = "a DER (binary) file"
        else:
            what = "no certificate"
        raise ValueError(
            f"{source} holds {what}, not a PEM certificate (-----BEGIN CERTIFICATE-----): give the exporter's "
            "certificate, the tls.crt it printed when it started"
            + (" (openssl x509 -inform der -in FILE -out FILE.pem converts DER)" if what.startswith("a DER") else "")
        )
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise ValueError(f"{source} is not a valid PEM certificate: {error}") from None
    return certificate_names(certificates[0])


def certificate_names(certificate: object) -> list[str]:
    """The DNS names and IP addresses a certificate (a `cryptography` x509 object) is valid for."""
    from cryptography import x509

    assert isinstance(certificate, x509.Certificate)
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*extension.get_values_for_type(x509.DNSName), *map(str, extension.get_values_for_type(x509.IPAddress))]


@dataclass(frozen=True)
class TlsIdentity:
    """A server certificate and its private key (PEM)."""

    certificate: bytes
    private_key: bytes

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate (DER), as colon-separated hex pairs."""
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        der = x509.load_pem_x509_certificate(self.certificate).public_bytes(Encoding.DER)
        return ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())

    @property
    def names(self) -> list[str]:
        """The DNS names and IP addresses the certificate is valid for."""
        from cryptography import x509

        return certificate_names(x509.load_pem_x509_certificate(self.certificate))

    def covers(self, names: Iterable[str]) -> bool:
        """Whether the certificate is valid for every one of `names`."""
        have = {_normalized(name) for name in self.names}
        return all(_normalized(name) in have for name in names)

    def server_credentials(self) -> grpc.ServerCredentials:
        import grpc

        return grpc.ssl_server_credentials([(self.private_key, self.certificate)])

    @classmethod
    def load(cls, certificate: Path, private_key: Path) -> TlsIdentity:
        """Read a PEM certificate and its key; ValueError names the file that is wrong and why."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        identity = cls(certificate=certificate.read_bytes(), private_key=private_key.read_bytes())
        try:
            public_key = x509.load_pem_x509_certificate(identity.certificate).public_key()
        except ValueError:
            raise ValueError(f"{certificate} is not a PEM certificate (-----BEGIN CERTIFICATE-----)") from None
        try:
            key = serialization.load_pem_private_key(identity.private_key, password=None)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{private_key} is not an unencrypted PEM private key: {error}") from None
        if key.public_key() != public_key:
            raise ValueError(f"{private_key} is not the key of the certificate {certificate}")
        return identity

    @classmethod
    def self_signed(cls, names: list[str], common_name: str = "jumpstarter exporter") -> TlsIdentity:
        """A new self-signed certificate (ECDSA P-256, ten years) valid for `names` (hosts and addresses)."""
        return _issue(names, common_name, issuer=None, days=3650)

    @classmethod
    def authority(cls, common_name: str) -> TlsIdentity:
        """A new certificate authority (ECDSA P-256, ten years) that can sign server certificates (`issue`)."""
        return _issue([], common_name, issuer=None, days=3650, authority=True)

    def issue(self, names: list[str], common_name: str, days: int = 365) -> TlsIdentity:
        """A new server certificate (ECDSA P-256) for `names`, signed by this identity (a certificate authority)."""
        return _issue(names, common_name, issuer=self, days=days)

    def issued(self, certificate: bytes) -> bool:
        """Whether this identity signed `certificate` (PEM), and it is valid for another 30 days at least."""
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature

        try:
            issued = x509.load_pem_x509_certificate(certificate)
            issued.verify_directly_issued_by(x509.load_pem_x509_certificate(self.certificate))
        except (ValueError, TypeError, InvalidSignature):
            return False
        remaining = issued.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
        return remaining > datetime.timedelta(days=30)


def _issue(
    names: list[str], common_name: str, issuer: TlsIdentity | None, days: int, authority: bool = False
) -> TlsIdentity:
    """A new key and its certificate for `names`: self-signed when no `issuer`, else signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    alternative_names: list[x509.GeneralName] = []
    for name in dict.fromkeys(_normalized(name) for name in names):
        try:
            alternative_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative_names.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if alternative_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
    signing_key: ec.EllipticCurvePrivateKey = key
    if issuer is None:
        # Self-signed: its own trust anchor, which the clients give as their CA file.
        builder = builder.issuer_name(subject).add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
        if authority:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
    else:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        authority_certificate = x509.load_pem_x509_certificate(issuer.certificate)
        authority_key = load_pem_private_key(issuer.private_key, password=None)
        if not isinstance(authority_key, ec.EllipticCurvePrivateKey):
            raise ValueError("the certificate authority's key is not an EC key")
        signing_key = authority_key
        builder = (
            builder.issuer_name(authority_certificate.subject)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(authority_key.public_key()), critical=False
            )
        )
    certificate = builder.sign(signing_key, hashes.SHA256())
    return TlsIdentity(
        certificate=certificate.public_bytes(serialization.Encoding.PEM),
        private_key=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


@dataclass(frozen=True)
class GeneratedIdentity:
    """A self-signed identity kept in a state directory, and whether it was just made."""

    identity: TlsIdentity
    certificate_path: Path
    created: bool
    replaced: bool  # an older certificate did not cover the names: clients need the new one


def generated_identity(directory: Path, names: list[str], common_name: str) -> GeneratedIdentity:
    """The self-signed identity kept in `directory` (tls.crt, tls.key), made or remade as needed.

    Reused while it covers `names`, so that clients keep trusting it; made anew when it
    does not (the host got another address or name), the key written 0600.
    """
    certificate_path, key_path = directory / "tls.crt", directory / "tls.key"
    replaced = False
    if certificate_path.exists() and key_path.exists():
        try:
            existing = TlsIdentity.load(certificate_path, key_path)
        except ValueError:
            replaced = True  # damaged: make a new one
        else:
            if existing.covers(names):
                return GeneratedIdentity(existing, certificate_path, created=False, replaced=False)
            replaced = True
    identity = TlsIdentity.self_signed(names, common_name=common_name)
    write_secret(key_path, identity.private_key)
    certificate_path.write_bytes(identity.certificate)
    return GeneratedIdentity(identity, certificate_path, created=True, replaced=replaced)


def default_names(listen_host: str) -> list[str]:
    """The names a self-signed certificate should cover for a listener on `listen_host`.

    Loopback and this host's names always; a wildcard (``0.0.0.0``, ``::``, empty) adds
    every address of the host (IPv4 ones for ``0.0.0.0``; all for ``::``); any other
    host is added as it is.
    """
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn()]
    host = listen_host.strip("[]") if listen_host not in _WILDCARDS_V6 else "::"
    if listen_host in _WILDCARDS_V4:
        names += [address for address in host_addresses() if ipaddress.ip_address(address).version == 4]
    elif host == "::":
        names += host_addresses()
    else:
        names.append(host)
    return list(dict.fromkeys(_normalized(name) for name in names if name))


def host_addresses() -> list[str]:
    """Every IP address of this host's interfaces (IPv6 link-local ones without their zone)."""
    import psutil

    addresses = []
    for interface_addresses in psutil.net_if_addrs().values():
        for entry in interface_addresses:
            if entry.family in (socket.AF_INET, socket.AF_INET6):
                addresses.append(entry.address.partition("%")[0])
    return sorted(dict.fromkeys(addresses), key=lambda address: (":" in address, address))


def _normalized(name: str) -> str:
    """An address in its canonical form (``::1``, not ``0:0::1``); a host name lowercased."""
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.lower()
