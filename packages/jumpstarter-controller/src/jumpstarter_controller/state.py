"""The controller's state directory: its certificate authority, its token-signing key, where the rest goes.

    DIR/                 0700
      ca.pem             the certificate authority: what client and exporter configs carry as tls.ca
      ca-key.pem         its key (0600)
      signing-key.pem    the key that signs every token (EC P-256, PKCS8, 0600)
      signing-key.pub.pem  its public key: all a router needs to check stream tokens
      admin.token        the admin credential (written by the controller)
      controller.db      the SQLite database (by default)

One certificate authority signs the controller's certificate and every router's: the original's
clients take ONE ``tls.ca`` for the controller and for every router endpoint it hands out
(research §1.1), so each server shows a certificate of this CA, issued for its own names
(`issue_server_certificate`). The CA and the signing key are made once and kept: configs already
written keep working across restarts.

`StateDir(path)` makes what is missing (the controller); `StateDir.existing(path)` only reads
and says what is missing or unreadable (a router given the controller's directory).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from jumpstarter.common.tls import TlsIdentity, write_secret

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey, EllipticCurvePublicKey

__all__ = ["StateDir", "StateDirError", "load_verify_key"]

CA_COMMON_NAME = "jumpstarter lab controller CA"


class StateDirError(ValueError):
    """The state directory, or a file in it, is missing or unusable; the message says which and what to do."""


class StateDir:
    """A controller's state directory; its files are made on first use unless opened with `existing`."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        self._create = create
        self._ca: TlsIdentity | None = None
        self._signing_key: EllipticCurvePrivateKey | None = None
        if create:
            try:
                path.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as error:
                raise StateDirError(f"cannot create the state directory {path}: {error.strerror}") from None
            if (path.stat().st_mode & 0o077) != 0 and path.stat().st_uid == os.getuid():
                path.chmod(0o700)  # it holds keys: only its owner may list it

    @classmethod
    def existing(cls, path: Path) -> StateDir:
        """The state directory of a controller that ran; StateDirError if it is not one, or cannot be read."""
        if not path.is_dir():
            raise StateDirError(
                f"{path} is not a controller's state directory (no such directory): give the --state-dir of "
                "'jmp controller run', on this host"
            )
        state = cls(path, create=False)
        for file in (state.ca_path, state.ca_key_path, state.signing_key_path):
            if not file.exists():
                raise StateDirError(
                    f"{path} is not a controller's state directory ({file.name} is missing): give the --state-dir "
                    "of 'jmp controller run', after the controller started once"
                )
            if not os.access(file, os.R_OK):
                raise StateDirError(f"cannot read {file}: run as the user that runs the controller")
        state.ca()
        state.signing_key()
        return state

    @property
    def ca_path(self) -> Path:
        return self.path / "ca.pem"

    @property
    def ca_key_path(self) -> Path:
        return self.path / "ca-key.pem"

    @property
    def signing_key_path(self) -> Path:
        return self.path / "signing-key.pem"

    @property
    def verify_key_path(self) -> Path:
        """The signing key's public key (PEM): what `jmp router run --verify-key` takes."""
        return self.path / "signing-key.pub.pem"

    @property
    def admin_token_path(self) -> Path:
        return self.path / "admin.token"

    @property
    def database_path(self) -> Path:
        return self.path / "controller.db"

    def ca(self) -> TlsIdentity:
        """The certificate authority, made the first time."""
        if self._ca is None:
            if self.ca_path.exists() or self.ca_key_path.exists() or not self._create:
                try:
                    self._ca = TlsIdentity.load(self.ca_path, self.ca_key_path)
                except (OSError, ValueError) as error:
                    raise StateDirError(
                        f"the certificate authority in {self.path} cannot be used ({_reason(error)}): restore "
                        f"{self.ca_path.name} and {self.ca_key_path.name} from a backup, or remove both to make a "
                        "new one (every client and exporter config must then get the new ca.pem)"
                    ) from None
            else:
                self._ca = TlsIdentity.authority(CA_COMMON_NAME)
                write_secret(self.ca_key_path, self._ca.private_key)
                self.ca_path.write_bytes(self._ca.certificate)
        return self._ca

    def signing_key(self) -> EllipticCurvePrivateKey:
        """The key that signs tokens (ES256), made the first time, with its public key beside it."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        if self._signing_key is None:
            if self.signing_key_path.exists() or not self._create:
                try:
                    key = serialization.load_pem_private_key(self.signing_key_path.read_bytes(), password=None)
                except (OSError, ValueError, TypeError) as error:
                    raise StateDirError(
                        f"the signing key {self.signing_key_path} cannot be used ({_reason(error)}): restore it "
                        "from a backup, or remove it to make a new one (every token issued so far stops working)"
                    ) from None
                if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
                    raise StateDirError(
                        f"the signing key {self.signing_key_path} is not an EC P-256 key: remove it to make a new one"
                    )
            else:
                key = ec.generate_private_key(ec.SECP256R1())
                pem = key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
                write_secret(self.signing_key_path, pem)
            self._signing_key = key
            if self._create:
                public = key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                if not self.verify_key_path.exists() or self.verify_key_path.read_bytes() != public:
                    self.verify_key_path.write_bytes(public)
        return self._signing_key

    def verify_key(self) -> EllipticCurvePublicKey:
        """The signing key's public key: what checks the tokens."""
        return self.signing_key().public_key()

    def issue_server_certificate(self, names: list[str], directory: Path) -> tuple[Path, Path]:
        """A server certificate of this CA for `names` in `directory` (tls.crt, tls.key 0600): (cert, key).

        Kept while it covers the names, is this CA's and is valid for a month more; issued anew otherwise.
        """
        certificate_path, key_path = directory / "tls.crt", directory / "tls.key"
        ca = self.ca()
        if certificate_path.exists() and key_path.exists():
            try:
                existing = TlsIdentity.load(certificate_path, key_path)
            except (OSError, ValueError):
                pass  # damaged: issue a new one
            else:
                if existing.covers(names) and ca.issued(existing.certificate):
                    return certificate_path, key_path
        identity = ca.issue(names, common_name=names[0] if names else "jumpstarter")
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_secret(key_path, identity.private_key)
            certificate_path.write_bytes(identity.certificate)
        except OSError as error:
            raise StateDirError(f"cannot write the server certificate in {directory}: {_reason(error)}") from None
        return certificate_path, key_path


def load_verify_key(path: Path) -> EllipticCurvePublicKey:
    """An EC P-256 public key from a PEM file (``signing-key.pub.pem``); StateDirError says what is wrong."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        data = path.read_bytes()
    except OSError as error:
        raise StateDirError(f"cannot read the verify key {path}: {_reason(error)}") from None
    if b"PRIVATE KEY" in data:
        raise StateDirError(
            f"{path} holds a private key: give the public key (signing-key.pub.pem in the controller's state "
            "directory), so that the router never holds the signing key"
        )
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise StateDirError(
            f"{path} is not a PEM public key (-----BEGIN PUBLIC KEY-----): give signing-key.pub.pem from the "
            "controller's state directory"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise StateDirError(f"{path} is not an EC P-256 public key: give signing-key.pub.pem from the controller")
    return key


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error).splitlines()[0] if str(error) else type(error).__name__
