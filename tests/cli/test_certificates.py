"""The certificate an exporter generates covers the names and addresses clients use, and follows them."""

from __future__ import annotations

import json
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from jumpstarter.common.tls import TlsIdentity, default_names, generated_identity


def interface_addresses(family: str) -> set[str]:
    """The host's addresses as iproute2 lists them: a source independent of the code under test."""
    ip = shutil.which("ip")
    if ip is None:
        pytest.skip("iproute2 (ip) is not installed")
    listing = json.loads(subprocess.run([ip, "-j", family, "addr"], capture_output=True, check=True).stdout)
    return {entry["local"] for interface in listing for entry in interface.get("addr_info", [])}


def test_a_wildcard_listener_covers_every_address_of_the_host() -> None:
    names = default_names("0.0.0.0")
    assert {"localhost", "127.0.0.1", "::1", socket.gethostname()} <= set(names)
    assert interface_addresses("-4") <= set(names)
    everything = default_names("::")
    assert interface_addresses("-4") | interface_addresses("-6") <= set(everything)


def test_a_given_listen_address_is_covered_as_it_is() -> None:
    names = default_names("127.0.0.2")
    assert "127.0.0.2" in names and "localhost" in names
    assert not interface_addresses("-4") - {"127.0.0.1"} & set(names), "only the address listened on"
    assert "::1" in default_names("[::1]")


def test_the_generated_identity_is_kept_while_it_covers_the_names(tmp_path: Path) -> None:
    first = generated_identity(tmp_path, ["localhost", "127.0.0.1"], common_name="bench")
    assert (first.created, first.replaced) == (True, False)
    assert stat.S_IMODE((tmp_path / "tls.key").stat().st_mode) == 0o600
    again = generated_identity(tmp_path, ["127.0.0.1"], common_name="bench")
    assert (again.created, again.identity) == (False, first.identity), "fewer names: still covered"

    moved = generated_identity(tmp_path, ["localhost", "127.0.0.1", "10.9.8.7"], common_name="bench")
    assert (moved.created, moved.replaced) == (True, True)
    assert moved.identity.certificate != first.identity.certificate
    assert "10.9.8.7" in moved.identity.names
    assert TlsIdentity.load(tmp_path / "tls.crt", tmp_path / "tls.key") == moved.identity


def test_a_damaged_generated_identity_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "tls.crt").write_text("not a certificate")
    (tmp_path / "tls.key").write_text("not a key")
    remade = generated_identity(tmp_path, ["127.0.0.1"], common_name="bench")
    assert remade.replaced and remade.identity.names == ["127.0.0.1"]
