"""The controller's state directory: a CA and a signing key made once, server certificates of the CA."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from jumpstarter.common.tls import TlsIdentity
from jumpstarter_controller.state import StateDir, StateDirError, load_verify_key


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_made_once_private_and_kept(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    state = StateDir(directory)
    ca, key = state.ca(), state.signing_key()
    assert mode(directory) == 0o700
    assert mode(state.ca_key_path) == 0o600
    assert mode(state.signing_key_path) == 0o600
    assert state.signing_key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert load_verify_key(state.verify_key_path) == key.public_key()
    certificate = x509.load_pem_x509_certificate(ca.certificate)
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    again = StateDir(directory)
    assert again.ca() == ca
    assert again.signing_key().private_numbers() == key.private_numbers()
    assert {path.name for path in directory.iterdir()} == {
        "ca.pem",
        "ca-key.pem",
        "signing-key.pem",
        "signing-key.pub.pem",
    }
    assert (state.admin_token_path, state.database_path) == (directory / "admin.token", directory / "controller.db")


def test_a_wide_directory_is_narrowed(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir(mode=0o755)
    StateDir(tmp_path / "state")
    assert mode(tmp_path / "state") == 0o700


def test_server_certificates_are_the_cas_and_follow_the_names(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    certificate, key = state.issue_server_certificate(["127.0.0.1", "localhost"], tmp_path / "router")
    assert mode(key) == 0o600
    issued = TlsIdentity.load(certificate, key)
    assert issued.names == ["localhost", "127.0.0.1"]
    assert state.ca().issued(issued.certificate)
    leaf = x509.load_pem_x509_certificate(issued.certificate)
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # Same names (or fewer): kept. Other names: issued anew.
    assert state.issue_server_certificate(["localhost"], tmp_path / "router") == (certificate, key)
    assert certificate.read_bytes() == issued.certificate
    state.issue_server_certificate(["127.0.0.2"], tmp_path / "router")
    assert TlsIdentity.load(certificate, key).names == ["127.0.0.2"]
    # Another CA's certificate (the state directory was remade): issued anew.
    other = StateDir(tmp_path / "other")
    other.issue_server_certificate(["127.0.0.2"], tmp_path / "router")
    state.issue_server_certificate(["127.0.0.2"], tmp_path / "router")
    assert state.ca().issued(certificate.read_bytes())


def test_a_tls_client_trusting_ca_pem_accepts_the_server(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    certificate, key = state.issue_server_certificate(["127.0.0.1"], tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certificate, key)
    client_context = ssl.create_default_context(cafile=str(state.ca_path))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            connection, _ = listener.accept()
            with server_context.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"ok")

        thread = threading.Thread(target=serve)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.recv(2) == b"ok"
        thread.join(10)


def test_existing_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(StateDirError, match=r"no such directory"):
        StateDir.existing(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StateDirError, match=r"ca\.pem is missing"):
        StateDir.existing(tmp_path / "empty")
    assert not list((tmp_path / "empty").iterdir())  # reading never makes files
    made = StateDir(tmp_path / "made")
    made.ca(), made.signing_key()
    assert StateDir.existing(tmp_path / "made").verify_key() == made.verify_key()
    made.signing_key_path.write_text("garbage")
    with pytest.raises(StateDirError, match=r"signing key .* cannot be used"):
        StateDir.existing(tmp_path / "made")


def test_a_damaged_ca_is_not_replaced(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    state.ca()
    state.ca_path.write_text("nonsense")
    with pytest.raises(StateDirError, match=r"certificate authority .* cannot be used"):
        StateDir(tmp_path / "state").ca()
    assert state.ca_path.read_text() == "nonsense"


def test_verify_key_files(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    state.signing_key(), state.ca()
    with pytest.raises(StateDirError, match=r"holds a private key: give the public key"):
        load_verify_key(state.signing_key_path)
    with pytest.raises(StateDirError, match=r"not a PEM public key"):
        load_verify_key(state.ca_path)
    with pytest.raises(StateDirError, match=r"cannot read the verify key .*: No such file"):
        load_verify_key(tmp_path / "missing.pem")
