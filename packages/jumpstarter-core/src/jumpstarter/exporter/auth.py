"""Tokens and TLS for an exporter's TCP listener.

A TCP listener is reachable from the network, so by default it needs TLS and a token:
every call must carry ``authorization: Bearer <token>`` (or the original jumpstarter's
``x-jumpstarter-passphrase: <token>``). The token is compared in constant time, and a
wrong or missing one ends the call with UNAUTHENTICATED, whatever its kind (unary,
streaming, byte stream).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

logger = logging.getLogger(__name__)

REFUSED = "missing or wrong token: this exporter needs its token (jmp shell --token-file FILE, or JMP_TOKEN)"


class TokenAuthentication(grpc.aio.ServerInterceptor):
    """Refuses every call that does not carry the token."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = await continuation(details)
        if handler is None or self._accepts(details.invocation_metadata or ()):
            return handler
        logger.warning("refused a call to %s without a valid token", details.method)
        return _refusing(handler)

    def _accepts(self, metadata: Any) -> bool:
        offered = []
        for key, value in metadata:
            if key == "authorization":
                scheme, _, credential = str(value).partition(" ")
                if scheme.lower() == "bearer":
                    offered.append(credential.strip())
            elif key == "x-jumpstarter-passphrase":
                offered.append(str(value))
        # Every offered value is compared, so the time taken does not depend on which matched.
        matches = [hmac.compare_digest(value.encode(), self._token) for value in offered]
        return any(matches)


def _refusing(handler: Any) -> Any:
    """A handler of the same kind as `handler` that ends the call with UNAUTHENTICATED."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSED)

    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[(handler.request_streaming, handler.response_streaming)]
    return make(
        refuse, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
    )


def new_token() -> str:
    return secrets.token_urlsafe(32)


def write_secret(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (0600), created so from the start."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.chmod(path, 0o600)  # also when the file existed with wider permissions


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

    def server_credentials(self) -> grpc.ServerCredentials:
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
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        alternative_names: list[x509.GeneralName] = []
        for name in dict.fromkeys(names):
            try:
                alternative_names.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alternative_names.append(x509.DNSName(name))
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(
            certificate=certificate.public_bytes(serialization.Encoding.PEM),
            private_key=key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )


def default_names(listen_host: str) -> list[str]:
    """The names a self-signed certificate should cover: loopback, this host, the listen address."""
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn()]
    if listen_host not in ("", "0.0.0.0", "::", "[::]"):
        names.append(listen_host.strip("[]"))
    return names
