"""Client configurations: `jmp config client create|list|use|delete`, the resolver, `jmp shell --client`.

Every command is a real `jmp` process whose HOME and XDG_CONFIG_HOME are the test's.
"""

from __future__ import annotations

import base64
import json
import socket
import stat
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from jumpstarter.common.tls import TlsIdentity
from jumpstarter.config.client import ConfigError, load_client_file, resolve_client

ENDPOINT = "grpc.lab.example.com:443"


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """The environment of a user whose home and configuration directories are the test's."""
    (tmp_path / "home").mkdir()
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}


def clients(tmp_path: Path) -> Path:
    return tmp_path / "xdg" / "jumpstarter" / "clients"


def create(commands: Any, home: dict[str, str], alias: str, *extra: str, token: str = "secret-token") -> Any:
    """`jmp config client create ALIAS ...`, the token piped on stdin (never on the command line)."""
    token_file = Path(home["HOME"]) / f"{alias}.token"
    token_file.write_text(token + "\n")
    with token_file.open() as stdin:
        process = commands.start(
            "jmp", "config", "client", "create", alias, "--namespace", "lab-a", "--name", alias,
            "--endpoint", ENDPOINT, *extra, stdin=stdin, **home,
        )  # fmt: skip
        return process.finish()


def test_create_writes_the_originals_file_in_its_place_readable_by_its_owner_only(
    commands: Any, home: dict[str, str], tmp_path: Path
) -> None:
    result = create(commands, home, "alice", "--allow", "mycompany_drivers.*, lab.*")
    assert result.returncode == 0, result
    path = clients(tmp_path) / "alice.yaml"
    assert result.stdout == f"{path}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text()) == {
        "apiVersion": "jumpstarter.dev/v1alpha1",
        "kind": "ClientConfig",
        "metadata": {"namespace": "lab-a", "name": "alice"},
        "endpoint": ENDPOINT,
        "token": "secret-token",
        "drivers": {"allow": ["mycompany_drivers.*", "lab.*"], "unsafe": False},
    }
    # The first client made is the default, in the user's config.yaml as the original keeps it.
    assert yaml.safe_load((tmp_path / "xdg" / "jumpstarter" / "config.yaml").read_text()) == {
        "apiVersion": "jumpstarter.dev/v1alpha1",
        "kind": "UserConfig",
        "config": {"current-client": "alice"},
    }


def test_the_token_comes_from_a_file_or_stdin_never_from_the_command_line(
    commands: Any, home: dict[str, str], tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("from-a-file\n")
    argv = ["jmp", "config", "client", "create", "bob", "--namespace", "lab-a", "--name", "bob", "-e", ENDPOINT]
    result = commands.run(*argv, "--token-file", token, **home)
    assert result.returncode == 0, result
    assert load_client_file(clients(tmp_path) / "bob.yaml").token == "from-a-file"

    result = commands.run(*argv[:4], "carol", *argv[5:], "--token", "s3cret", **home)
    assert result.returncode == 2
    assert result.stderr.startswith("jmp: error: --token: a secret on the command line is visible"), result
    assert not (clients(tmp_path) / "carol.yaml").exists()

    result = commands.run(*argv[:4], "carol", *argv[5:], **home)  # stdin is empty: no token
    assert result.returncode == 1
    assert (
        result.stderr == "jmp: error: stdin gave no token: give the token that jmp admin create client printed, alone\n"
    )


def test_the_ca_is_stored_as_the_base64_of_its_pem(commands: Any, home: dict[str, str], tmp_path: Path) -> None:
    pem = TlsIdentity.self_signed(["grpc.lab.example.com"]).certificate
    (tmp_path / "ca.pem").write_bytes(pem)
    result = create(commands, home, "alice", "--tls-ca", str(tmp_path / "ca.pem"))
    assert result.returncode == 0, result
    assert base64.b64decode(load_client_file(clients(tmp_path) / "alice.yaml").tls.ca) == pem

    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n")
    result = create(commands, home, "bob", "--tls-ca", str(tmp_path / "key.pem"))
    assert result.returncode == 1
    assert "holds a private key, not a PEM certificate" in result.stderr, result


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--name", "Alice"], "jmp: error: --name 'Alice': not a Kubernetes name (it has uppercase letters); 'alice'"),
        (["--namespace", "lab_a"], "jmp: error: --namespace 'lab_a': not a Kubernetes namespace (it has '_')"),
        (
            ["--endpoint", "https://grpc.lab:443"],
            "jmp: error: --endpoint 'https://grpc.lab:443': a gRPC address has no",
        ),
        (["--endpoint", "grpc.lab"], "jmp: error: --endpoint 'grpc.lab': not HOST:PORT"),
    ],
)
def test_wrong_values_are_one_line_naming_the_option(
    commands: Any, home: dict[str, str], tmp_path: Path, extra: list[str], message: str
) -> None:
    result = create(commands, home, "alice", *extra)  # the later option wins over create's own
    assert result.returncode == 1
    assert result.stderr.startswith(message) and len(result.stderr.splitlines()) == 1, result
    assert not clients(tmp_path).exists() or not list(clients(tmp_path).iterdir())


def test_list_use_and_delete(commands: Any, home: dict[str, str], tmp_path: Path) -> None:
    for alias in ("alice", "bob", "carol"):
        assert create(commands, home, alias).returncode == 0
    listed = commands.run("jmp", "config", "client", "list", **home)
    assert listed.returncode == 0, listed
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["CURRENT", "ALIAS", "ENDPOINT", "PATH"]
    assert [line.split()[:2] for line in lines[1:]] == [["*", "alice"], ["bob", ENDPOINT], ["carol", ENDPOINT]]

    assert commands.run("jmp", "config", "client", "use", "bob", **home).returncode == 0
    names = commands.run("jmp", "config", "client", "list", "-o", "json", **home)
    document = json.loads(names.stdout)
    assert document["currentConfig"] == "bob"
    assert [item["alias"] for item in document["items"]] == ["alice", "bob", "carol"]

    wrong = commands.run("jmp", "config", "client", "use", "dave", **home)
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("jmp: error: no client configuration named 'dave' in "), wrong
    assert "(the ones there: alice, bob, carol)" in wrong.stderr

    # Deleting the default makes the next one the default, as the original does.
    deleted = commands.run("jmp", "config", "client", "delete", "bob", **home)
    assert deleted.returncode == 0, deleted
    assert deleted.stdout.endswith("; the default client is now alice\n")
    assert commands.run("jmp", "config", "client", "list", "-o", "name", **home).stdout == "alice\ncarol\n"

    again = create(commands, home, "alice")
    assert again.returncode == 1 and "exists already: delete it first" in again.stderr, again


@pytest.mark.parametrize(
    ("variables", "where"),
    [
        ({"JMP_CLIENT_CONFIG_HOME": "{tmp}/elsewhere"}, "{tmp}/elsewhere"),
        ({"XDG_CONFIG_HOME": None}, "{tmp}/home/.config/jumpstarter"),
    ],
    ids=["JMP_CLIENT_CONFIG_HOME", "HOME"],
)
def test_the_config_home_is_the_originals(
    commands: Any, home: dict[str, str], tmp_path: Path, variables: dict[str, str | None], where: str
) -> None:
    env = {**home, **{key: value.format(tmp=tmp_path) if value else None for key, value in variables.items()}}
    result = create(commands, env, "alice")  # type: ignore[arg-type]
    assert result.returncode == 0, result
    place = Path(where.format(tmp=tmp_path))
    assert result.stdout == f"{place / 'clients' / 'alice.yaml'}\n"
    assert (place / "config.yaml").exists()


ORIGINALS_FILE = """\
apiVersion: jumpstarter.dev/v1alpha1
kind: ClientConfig
metadata:
  namespace: lab-a
  name: alice
endpoint: grpc.lab.example.com:443
tls:
  ca: ''
  insecure: false
token: the-token
grpcOptions: null
drivers:
  allow:
  - ''
  unsafe: false
shell:
  use_profiles: false
leases:
  acquisition_timeout: 600
  retry_timeout: 30.0
"""


def test_the_resolver_chooses_as_documented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JMP_CLIENT_CONFIG")
    monkeypatch.setenv("JMP_CLIENT_CONFIG_HOME", str(tmp_path))
    (tmp_path / "clients").mkdir()
    (tmp_path / "clients" / "alice.yaml").write_text(ORIGINALS_FILE)  # as the original 0.9.0 writes it
    (tmp_path / "clients" / "bob.yaml").write_text(ORIGINALS_FILE.replace("alice", "bob"))
    (tmp_path / "config.yaml").write_text(
        "apiVersion: jumpstarter.dev/v1alpha1\nkind: UserConfig\nconfig:\n  current-client: bob\n"
    )

    assert resolve_client().config.metadata.name == "bob"  # type: ignore[union-attr]
    assert resolve_client().source == "the default client bob"
    assert resolve_client("alice").config.leases.acquisition_timeout == 600
    assert resolve_client(path=tmp_path / "clients" / "alice.yaml").source.startswith("--client-config ")
    monkeypatch.setenv("JMP_CLIENT", "alice")
    assert resolve_client().config.metadata.name == "alice"  # type: ignore[union-attr]
    assert resolve_client("bob").config.metadata.name == "bob"  # type: ignore[union-attr]

    monkeypatch.setenv("JMP_ENDPOINT", "other.lab:1443")
    monkeypatch.setenv("JMP_TOKEN", "from-env")
    resolved = resolve_client()
    assert (resolved.config.endpoint, resolved.config.token) == ("other.lab:1443", "from-env")
    assert resolved.source == "$JMP_CLIENT (alice) with $JMP_ENDPOINT, $JMP_TOKEN"

    monkeypatch.setenv("JMP_ENDPOINT", "https://other.lab")
    with pytest.raises(ConfigError, match=r"^\$JMP_ENDPOINT is 'https://other.lab': Value error, a gRPC address"):
        resolve_client()
    with pytest.raises(ConfigError, match="--client and --client-config both choose"):
        resolve_client("alice", "x.yaml")


def test_a_configuration_of_the_environment_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JMP_CLIENT_CONFIG")
    monkeypatch.setenv("JMP_CLIENT_CONFIG_HOME", str(tmp_path))
    for variable, value in {
        "JMP_ENDPOINT": ENDPOINT,
        "JMP_TOKEN": "t",
        "JMP_NAMESPACE": "lab-a",
        "JMP_NAME": "ci",
    }.items():
        monkeypatch.setenv(variable, value)
    config = resolve_client().config
    assert (config.endpoint, config.token, config.metadata) == (ENDPOINT, "t", config.metadata)
    assert config.metadata is not None and (config.metadata.namespace, config.metadata.name) == ("lab-a", "ci")


def test_jmp_shell_resolves_the_client_then_asks_which_exporter(
    commands: Any, home: dict[str, str], tmp_path: Path
) -> None:
    assert create(commands, home, "alice").returncode == 0
    result = commands.run("jmp", "shell", "--client", "alice", "--", "true", **home)
    assert result.returncode == 2, result
    assert result.stderr.startswith("jmp: error: --client: say which exporter to lease: --selector KEY=VALUE")

    missing = commands.run("jmp", "shell", "--client", "bob", "--", "true", **home)
    assert missing.returncode == 2, missing  # a wrong client configuration, as with --selector
    assert missing.stderr.startswith("jmp: error: no client configuration named 'bob' in "), missing

    (tmp_path / "broken.yaml").write_text("kind: ClientConfig\nendpoint: grpc.lab\n")
    broken = commands.run("jmp", "shell", "--client-config", tmp_path / "broken.yaml", "--", "true", **home)
    assert broken.returncode == 2
    assert f"jmp: error: {tmp_path / 'broken.yaml'}:2:11: at endpoint: endpoint is 'grpc.lab': not HOST:PORT" in (
        broken.stderr
    ), broken

    (tmp_path / "local.yaml").write_text("drivers: {unsafe: true}\n")
    local = commands.run("jmp", "shell", "--client-config", tmp_path / "local.yaml", "--", "true", **home)
    assert local.returncode == 2
    leasing = commands.run("jmp", "shell", "--client-config", tmp_path / "local.yaml", "-l", "a=b", "--", "true")
    assert (leasing.returncode, leasing.stderr) == (2, local.stderr), leasing
    assert "has no endpoint and no token and no metadata.name: it cannot reach a lab controller" in local.stderr

    mixed = commands.run("jmp", "shell", "--client", "alice", "--host", "h:1", "--", "true", **home)
    assert mixed.returncode == 2
    assert "--client is for leasing an exporter from a lab controller; it does not go with --host" in mixed.stderr


def test_jmp_shell_with_a_controller_it_cannot_reach_exits_3_as_for_an_exporter(
    commands: Any, home: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as taken:  # bound, not listening: a connection is refused
        taken.bind(("127.0.0.1", 0))
        endpoint = f"127.0.0.1:{taken.getsockname()[1]}"
        (tmp_path / "away.yaml").write_text(
            f"kind: ClientConfig\nmetadata: {{namespace: lab-a, name: alice}}\nendpoint: {endpoint}\ntoken: t\n"
        )
        (tmp_path / "away.yaml").chmod(0o600)
        result = commands.run("jmp", "shell", "--client-config", tmp_path / "away.yaml", "-l", "a=b", "--", "true")
    assert result.returncode == 3, result
    assert result.stderr.startswith(f"jmp: error: cannot reach the lab controller at {endpoint}: "), result
    assert len(result.stderr.splitlines()) == 1


def test_the_original_reads_our_files_and_we_read_its(
    commands: Any, home: dict[str, str], tmp_path: Path, upstream_python: Path, upstream_env: dict[str, str]
) -> None:
    assert create(commands, home, "alice", "--allow", "lab.*").returncode == 0
    script = textwrap.dedent(
        """
        from jumpstarter.config.client import ClientConfigV1Alpha1
        from jumpstarter.config.common import ObjectMeta
        from jumpstarter.config.user import UserConfigV1Alpha1

        current = UserConfigV1Alpha1.load().config.current_client
        print(current.alias, current.endpoint, current.token, current.drivers.allow)
        bob = ClientConfigV1Alpha1(alias="bob", metadata=ObjectMeta(namespace="lab-a", name="bob"),
                                   endpoint="grpc.lab:443", token="bobs")
        ClientConfigV1Alpha1.save(bob)
        """
    )
    result = subprocess.run(
        [upstream_python, "-c", script], env={**upstream_env, **home}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"alice {ENDPOINT} secret-token ['lab.*']\n"
    listed = commands.run("jmp", "config", "client", "list", "-o", "name", **home)
    assert listed.stdout == "alice\nbob\n", listed
    assert load_client_file(clients(tmp_path) / "bob.yaml").token == "bobs"


def test_a_broken_user_configuration_is_one_error_naming_its_place(
    commands: Any, home: dict[str, str], tmp_path: Path
) -> None:
    assert create(commands, home, "alice").returncode == 0
    user_config = tmp_path / "xdg" / "jumpstarter" / "config.yaml"
    user_config.write_text("config: [\n")
    for argv in (["config", "client", "use", "alice"], ["config", "client", "list"]):
        result = commands.run("jmp", *argv, **home)
        assert result.returncode == 1, result
        assert result.stderr.startswith(f"jmp: error: {user_config}:2:1: not valid YAML"), result
    user_config.write_text("config: {current-clinet: alice}\n")
    result = commands.run("jmp", "shell", "--client-config", clients(tmp_path) / "alice.yaml", "--", "true", **home)
    assert result.returncode == 2, result  # the explicit file: the user configuration is not read
    result = commands.run("jmp", "config", "client", "list", **home)
    assert "unknown key 'current-clinet' in config" in result.stderr and "did you mean 'current-client'?" in (
        result.stderr
    ), result
