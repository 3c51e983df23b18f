"""`jmp exporter run`, as a real process: listeners, credentials, sessions, signals and exit codes."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import grpc
import psutil
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from google.protobuf import empty_pb2

from jumpstarter.client.connect import connect
from jumpstarter.common.exceptions import DriverConnectionError, DriverError
from jumpstarter.common.tls import TlsIdentity, write_secret
from jumpstarter.v1 import jumpstarter_pb2, jumpstarter_pb2_grpc, router_pb2_grpc

CONFIG = """\
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: rack-3
export:
  counter:
    type: exporter_drivers.Counter
    config:
      journal: {journal}
  echo:
    type: exporter_drivers.Echo
"""

HEADER = "apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nmetadata:\n  name: rack-3\n"

TCP_LINE = re.compile(
    r"serving on (?P<address>\S+) with TLS \(certificate (?P<certificate>.+), SHA-256 (?P<fingerprint>[0-9A-F:]+)\)"
    r" and a token \(in (?P<token>.+)\)$",
    re.MULTILINE,
)


@dataclass
class Exporter:
    """A running `jmp exporter run` and where it serves."""

    running: Any
    unix: str | None
    tcp: str | None
    stderr: str

    def tls(self) -> tuple[bytes, str, str]:
        """The certificate (PEM), its fingerprint and the token that the exporter printed."""
        match = TCP_LINE.search(self.stderr)
        assert match, self.stderr
        return Path(match["certificate"]).read_bytes(), match["fingerprint"], Path(match["token"]).read_text().strip()

    def stop(self, signal_number: int = signal.SIGTERM) -> Any:
        os.kill(self.running.pid, signal_number)
        return self.running.finish()


@pytest.fixture
def exporter_config(write: Callable[[str, str], Path], journal: Path) -> Path:
    return write("rack-3.yaml", CONFIG.format(journal=journal))


@pytest.fixture
def start(commands: Any, exporter_config: Path, tmp_path: Path) -> Callable[..., Exporter]:
    """Start `jmp exporter run --config <exporter_config> *arguments`; wait until it serves."""

    def start(*arguments: str, command: tuple[str, ...] = ("exporter", "run", "--config")) -> Exporter:
        running = commands.start("jmp", *command, exporter_config, *arguments, XDG_STATE_HOME=str(tmp_path / "state"))
        expected = ("--tcp" in arguments) + ("--unix" in arguments or "--tcp" not in arguments)
        running.wait_for(lambda out, err: err.count("serving on") == expected)
        stderr = running.output()[1]
        unix = re.search(r"serving on (/\S+)$", stderr, re.MULTILINE)
        tcp = re.search(r"serving on (\d+\.\d+\.\d+\.\d+:\d+)", stderr)
        return Exporter(running, unix and unix[1], tcp and tcp[1], stderr)

    return start


def journal_lines(journal: Path) -> list[str]:
    return [line.split()[0] for line in journal.read_text().splitlines()] if journal.exists() else []


def wait_for_journal(journal: Path, expected: list[str], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while journal_lines(journal) != expected:
        assert time.monotonic() < deadline, f"journal {journal_lines(journal)}, expected {expected}"
        time.sleep(0.05)


# -- TCP: TLS and a token ------------------------------------------------------------


def test_tcp_generates_a_certificate_and_a_token_and_requires_them(start: Any, tmp_path: Path) -> None:
    exporter = start("--tcp", "127.0.0.1:0")
    certificate, fingerprint, token = exporter.tls()
    der = x509.load_pem_x509_certificate(certificate).public_bytes(Encoding.DER)
    assert fingerprint == ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())
    state = tmp_path / "state" / "jumpstarter" / "exporters" / "rack-3"
    for secret in ("tls.key", "token"):
        assert stat.S_IMODE((state / secret).stat().st_mode) == 0o600, secret
    assert token not in exporter.stderr, "the token itself is never printed"
    assert exporter.unix is None, "with --tcp alone there is no Unix socket"

    with connect(exporter.tcp, tls_ca=certificate, token=token) as client:
        assert client.counter.call("increment") == 1
    for wrong in ("not-the-token", None):
        refused = pytest.raises(DriverConnectionError, match="refused the credentials: missing or wrong token")
        with refused, connect(exporter.tcp, tls_ca=certificate, token=wrong):
            pass
    # Plaintext to a TLS port, then TLS trusting another certificate than the exporter's.
    plaintext = pytest.raises(DriverConnectionError, match="closed the connection without TLS")
    with plaintext, connect(exporter.tcp, token=token, insecure=True):
        pass
    other = TlsIdentity.self_signed(["127.0.0.1"])
    with (
        pytest.raises(DriverConnectionError, match=r"certificates given to trust \(--tls-ca\) did not sign"),
        connect(exporter.tcp, tls_ca=other.certificate, token=token),
    ):
        pass

    assert exporter.stop().returncode == 0
    assert "refused a call" in exporter.running.output()[1]
    assert token not in exporter.running.output()[1]


def test_the_generated_certificate_and_token_are_kept(start: Any) -> None:
    first = start("--tcp", "127.0.0.1:0")
    first_tls = first.tls()
    first.stop()
    second = start("--tcp", "127.0.0.1:0")
    assert second.tls() == first_tls
    second.stop()


def test_the_generated_certificate_follows_the_listen_address(start: Any) -> None:
    first = start("--tcp", "127.0.0.1:0")
    first_certificate = first.tls()[0]
    first.stop()
    moved = start("--tcp", "127.0.0.2:0")  # the laptop on another network, say
    certificate, _, token = moved.tls()
    assert certificate != first_certificate
    assert "made a new TLS certificate" in moved.stderr and "give clients the new one" in moved.stderr
    names = TlsIdentity(certificate, b"").names
    assert {"127.0.0.2", "127.0.0.1", "localhost"} <= set(names)
    address = re.search(r"serving on (127\.0\.0\.2:\d+)", moved.stderr)
    assert address, moved.stderr
    with connect(address[1], tls_ca=certificate, token=token) as client:
        assert client.counter.call("increment") == 1
    moved.stop()
    # Back where it was: the certificate covers that too, and is kept.
    back = start("--tcp", "127.0.0.1:0")
    assert back.tls()[0] == certificate and "made a new" not in back.stderr
    back.stop()


def _raw_calls(channel: grpc.Channel, token: str) -> dict[str, Callable[[tuple[tuple[str, str], ...]], Any]]:
    """One call of each kind, sent with the given metadata; each returns once the exporter has answered."""
    exporter = jumpstarter_pb2_grpc.ExporterServiceStub(channel)
    router = router_pb2_grpc.RouterServiceStub(channel)
    report = exporter.GetReport(empty_pb2.Empty(), metadata=(("authorization", f"Bearer {token}"),))
    uuid = next(driver.uuid for driver in report.reports if driver.labels.get("jumpstarter.dev/name") == "counter")
    request = jumpstarter_pb2.DriverCallRequest(uuid=uuid, method="increment")
    return {
        "unary": lambda metadata: exporter.DriverCall(request, metadata=metadata),
        "server streaming": lambda metadata: next(iter(exporter.LogStream(empty_pb2.Empty(), metadata=metadata))),
        "bidirectional": lambda metadata: next(iter(router.Stream(iter(()), metadata=metadata))),
    }


def test_every_kind_of_call_is_refused_without_the_token(start: Any) -> None:
    exporter = start("--tcp", "127.0.0.1:0")
    certificate, _, token = exporter.tls()
    credentials = grpc.ssl_channel_credentials(root_certificates=certificate)
    with grpc.secure_channel(exporter.tcp, credentials) as channel:
        calls = _raw_calls(channel, token)
        for kind, call in calls.items():
            for metadata in ((), (("authorization", "Bearer wrong"),), (("x-jumpstarter-passphrase", "wrong"),)):
                with pytest.raises(grpc.RpcError) as refused:
                    call(metadata)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, (kind, metadata)
                assert "missing or wrong token" in refused.value.details()
        # Either header carries the token: ours, and the original's passphrase.
        assert calls["unary"]((("authorization", f"Bearer {token}"),)).HasField("result")
        assert calls["unary"]((("x-jumpstarter-passphrase", token),)).HasField("result")
    assert exporter.stop().returncode == 0


def test_a_given_certificate_key_and_token(start: Any, write: Any, tmp_path: Path) -> None:
    identity = TlsIdentity.self_signed(["127.0.0.1"], common_name="lab gateway")
    (tmp_path / "lab.crt").write_bytes(identity.certificate)
    (tmp_path / "lab.key").write_bytes(identity.private_key)
    write("lab.token", "lab-secret\n")
    for secret in ("lab.key", "lab.token"):  # secrets others can read are refused
        (tmp_path / secret).chmod(0o600)
    exporter = start(
        "--tcp", "127.0.0.1:0", "--tls-cert", f"{tmp_path}/lab.crt", "--tls-key", f"{tmp_path}/lab.key",
        "--token-file", f"{tmp_path}/lab.token",
    )  # fmt: skip
    certificate, fingerprint, token = exporter.tls()
    assert (certificate, fingerprint, token) == (identity.certificate, identity.fingerprint, "lab-secret")
    with connect(exporter.tcp, tls_ca=identity.certificate, token="lab-secret") as client:
        assert client.counter.call("increment") == 1
    assert not (tmp_path / "state").exists(), "nothing is generated when everything is given"
    exporter.stop()


def test_insecure_no_auth_is_plaintext_with_a_warning(start: Any) -> None:
    exporter = start("--tcp", "127.0.0.1:0", "--insecure-no-auth")
    assert "WARNING" in exporter.stderr and "no TLS and no token" in exporter.stderr
    with connect(exporter.tcp, insecure=True) as client:
        assert client.counter.call("increment") == 1
    exporter.stop()


def test_unix_and_tcp_at_once(start: Any, tmp_path: Path) -> None:
    socket_path = str(tmp_path / "rack-3.sock")
    exporter = start("--unix", socket_path, "--tcp", "127.0.0.1:0")
    certificate, _, token = exporter.tls()
    assert exporter.unix == socket_path
    assert stat.S_IMODE(os.stat(socket_path).st_mode) & 0o077 == 0, "the socket is for its owner only"
    # The Unix socket needs no token: only its owner can open it. Both reach the same session.
    with connect(socket_path) as local, connect(exporter.tcp, tls_ca=certificate, token=token) as remote:
        assert local.counter.call("increment") == 1
        assert remote.counter.call("increment") == 2
    exporter.stop()
    assert not os.path.exists(socket_path)


# -- mistakes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--tcp", "lab-7"], "--tcp takes HOST:PORT"),
        (["--tcp", "127.0.0.1:99999"], "--tcp takes HOST:PORT"),
        (["--token-file", "token"], "--token-file is for a TCP listener: add --tcp HOST:PORT"),
        (["--insecure-no-auth"], "--insecure-no-auth is for a TCP listener: add --tcp HOST:PORT"),
        (["--tcp", "203.0.113.7:0"], "--tcp 203.0.113.7:0: 203.0.113.7 is not an address of this host"),
        (["--tcp", "127.0.0.1:0", "--tls-cert", "lab.crt"], "--tls-cert and --tls-key go together"),
        (["--tcp", "127.0.0.1:0", "--insecure-no-auth", "--token-file", "t"], "cannot go with"),
        (["--log-level", "LOUD"], "Invalid value for '--log-level'"),
    ],
)
def test_usage_errors_exit_2(commands: Any, exporter_config: Path, arguments: list[str], message: str) -> None:
    result = commands.run("jmp", "exporter", "run", "--config", exporter_config, *arguments)
    assert result.returncode == 2, result
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("export: [oops\n", "rack-3.yaml"),
        (f"{HEADER}export:\n  p:\n    type: NoSuchPower\n", "NoSuchPower"),
        (f"{HEADER}export:\n  p:\n    typo: X\n", "typo"),
    ],
)  # fmt: skip
def test_a_malformed_config_exits_2_with_one_located_error(commands: Any, write: Any, text: str, message: str) -> None:
    config = write("rack-3.yaml", text)
    result = commands.run("jmp", "exporter", "run", "--config", config)
    assert result.returncode == 2, result
    assert message in result.stderr and result.stderr.startswith("jmp: error:")
    assert "Traceback" not in result.stderr


def test_a_missing_config_exits_2(commands: Any, tmp_path: Path) -> None:
    result = commands.run("jmp", "exporter", "run", "--config", tmp_path / "nowhere.yaml")
    assert result.returncode == 2, result
    assert "nowhere.yaml" in result.stderr and "Traceback" not in result.stderr


def test_bad_tls_files_exit_2(commands: Any, exporter_config: Path, write: Any, tmp_path: Path) -> None:
    write("garbage.crt", "not a certificate")
    identity, other = TlsIdentity.self_signed(["127.0.0.1"]), TlsIdentity.self_signed(["127.0.0.1"])
    (tmp_path / "lab.crt").write_bytes(identity.certificate)
    (tmp_path / "other.key").write_bytes(other.private_key)
    (tmp_path / "other.key").chmod(0o600)
    for certificate, key, message in [
        ("garbage.crt", "other.key", "garbage.crt is not a PEM certificate"),
        ("lab.crt", "other.key", "other.key is not the key of the certificate"),
        ("lab.crt", "missing.key", "missing.key"),
    ]:
        result = commands.run(
            "jmp", "exporter", "run", "--config", exporter_config, "--tcp", "127.0.0.1:0",
            "--tls-cert", tmp_path / certificate, "--tls-key", tmp_path / key,
        )  # fmt: skip
        assert result.returncode == 2, result
        assert message in result.stderr and "Traceback" not in result.stderr


def test_a_port_in_use_exits_1(commands: Any, exporter_config: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = commands.run(
            "jmp", "exporter", "run", "--config", exporter_config, "--tcp", f"127.0.0.1:{port}", "--insecure-no-auth"
        )
    assert result.returncode == 1, result
    # One line of ours: no gRPC log line, no "set GRPC_VERBOSITY"; who holds it, when this user may know.
    assert result.stderr == (
        f"jmp: error: 127.0.0.1:{port} is in use (by pid {os.getpid()}, {psutil.Process().name()}): stop what "
        "listens there, or choose another port (--tcp 127.0.0.1:0 picks a free one)\n"
    )


def test_a_port_another_exporter_serves_is_in_use(start: Any, commands: Any, exporter_config: Path) -> None:
    # gRPC lets two servers share a port (SO_REUSEPORT): a second exporter would take half the clients.
    first = start("--tcp", "127.0.0.1:0", "--insecure-no-auth")
    port = first.tcp.rpartition(":")[2]
    second = commands.run(
        "jmp", "exporter", "run", "--config", exporter_config, "--tcp", f"127.0.0.1:{port}", "--insecure-no-auth"
    )
    assert second.returncode == 1, second
    assert second.stderr.startswith(f"jmp: error: 127.0.0.1:{port} is in use (by pid {first.running.pid}, "), second
    assert first.stop().returncode == 0


def test_a_socket_path_in_use_exits_1_and_a_stale_one_is_replaced(start: Any, commands: Any, tmp_path: Path) -> None:
    socket_path = tmp_path / "rack-3.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(socket_path))  # left behind by an exporter that died: nobody listens
    exporter = start("--unix", str(socket_path))
    with connect(str(socket_path)) as client:
        assert client.counter.call("increment") == 1

    second = commands.run("jmp", "exporter", "run", "--config", tmp_path / "rack-3.yaml", "--unix", socket_path)
    assert second.returncode == 1, second
    assert "another exporter is listening there" in second.stderr
    assert exporter.stop().returncode == 0

    socket_path.write_text("not a socket")
    third = commands.run("jmp", "exporter", "run", "--config", tmp_path / "rack-3.yaml", "--unix", socket_path)
    assert third.returncode == 1 and "it exists and is not a socket" in third.stderr, third


# -- sessions ------------------------------------------------------------------------


def test_clients_at_once_share_a_session_which_ends_after_the_last(start: Any, journal: Path) -> None:
    exporter = start()
    with connect(exporter.unix) as first:
        assert first.counter.call("increment") == 1
        with connect(exporter.unix) as second:
            assert second.counter.call("increment") == 2, "the same drivers"
        time.sleep(0.5)  # the first client still holds the session
        assert first.counter.call("increment") == 3
    assert journal_lines(journal) == ["reset"]
    wait_for_journal(journal, ["reset", "close"])  # a couple of seconds after the last client left

    with connect(exporter.unix) as client:
        assert client.counter.call("increment") == 1, "a new session has new drivers"
    assert journal_lines(journal) == ["reset", "close", "reset"]
    exporter.stop()
    assert journal_lines(journal) == ["reset", "close", "reset", "close"]


@pytest.mark.parametrize("kind", ["exception", "exit", "interrupt"])
def test_a_crashing_driver_call_leaves_the_exporter_serving(start: Any, kind: str) -> None:
    exporter = start()
    with connect(exporter.unix) as client:
        with pytest.raises(DriverError):
            client.counter.call("crash", kind)
        with pytest.raises(DriverError):
            client.counter.call("crash_async")
        assert client.counter.call("increment") == 1, "the session and its drivers carry on"
    assert exporter.running.process.poll() is None
    assert exporter.stop().returncode == 0


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_the_exporters_log_is_timed_and_tracebacks_are_for_debug(start: Any, level: str) -> None:
    exporter = start("--log-level", level)
    with connect(exporter.unix) as client, pytest.raises(DriverError):
        client.counter.call("crash", "exception")
    stderr = exporter.stop().stderr
    (failure,) = [line for line in stderr.splitlines() if "Counter.crash() raised" in line]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d WARNING jumpstarter\.exporter\.session: ", failure), failure
    assert failure.endswith("raised RuntimeError: the driver broke")
    if level == "DEBUG":
        assert "  Traceback (most recent call last):" in stderr
        assert "grpc._cython" not in stderr and "asyncio" not in stderr, "no gRPC or asyncio machinery"
    else:
        assert "Traceback" not in stderr


# -- stopping ------------------------------------------------------------------------


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_an_open_stream_stops_gracefully(start: Any, journal: Path, signal_number: int) -> None:
    exporter = start()
    with connect(exporter.unix) as client, client.echo.stream() as stream:
        stream.send(b"ping")
        assert stream.receive() == b"ping"
        os.kill(exporter.running.pid, signal_number)
        with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError, DriverError)):
            while True:
                stream.receive()
    result = exporter.running.finish()
    assert result.returncode == 0, result
    assert f"stopping ({signal.Signals(signal_number).name})" in result.stderr
    assert "Traceback" not in result.stderr
    assert journal_lines(journal) == ["reset", "close"]
    assert not os.path.exists(exporter.unix)


def test_jmp_run_is_an_alias(start: Any) -> None:
    exporter = start(command=("run", "--exporter-config"))
    with connect(exporter.unix) as client:
        assert client.counter.call("increment") == 1
    exporter.stop()


# -- jmp shell --host against jmp exporter run -----------------------------------------

POWER_CONFIG = """\
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: bench-9
export:
  power:
    type: jmpcli_drivers.Power
    config:
      journal: {journal}
"""


@pytest.fixture
def power_exporter(commands: Any, write: Any, journal: Path, tmp_path: Path) -> Callable[..., Exporter]:
    """`jmp exporter run` of a power switch whose client (jmpcli_drivers.PowerClient) adds `j` commands."""
    config = write("bench-9.yaml", POWER_CONFIG.format(journal=journal))

    def start(*arguments: str) -> Exporter:
        running = commands.start("jmp", "exporter", "run", "--config", config, *arguments,
                                 XDG_STATE_HOME=str(tmp_path / "state"))  # fmt: skip
        running.wait_for(lambda out, err: "serving on" in err)
        stderr = running.output()[1]
        tcp = re.search(r"serving on (\d+\.\d+\.\d+\.\d+:\d+)", stderr)
        return Exporter(running, None, tcp and tcp[1], stderr)

    return start


def _shell(commands: Any, exporter: Exporter, *options: str | Path, script: str, **env: str | None) -> Any:
    """`jmp shell --host <exporter> *options -- sh -c <script>`, trusting the test's client classes."""
    return commands.run(
        "jmp", "shell", "--host", exporter.tcp, *options, "--", "sh", "-c", script,
        JMP_DRIVERS_ALLOW="jmpcli_drivers.*", **env,
    )  # fmt: skip


def test_shell_over_tcp_with_tls_and_the_token(commands: Any, power_exporter: Any, tmp_path: Path) -> None:
    exporter = power_exporter("--tcp", "127.0.0.1:0")
    certificate, _, token = exporter.tls()
    (tmp_path / "ca.pem").write_bytes(certificate)
    (tmp_path / "token").write_text(token)
    script = (
        "j power on && j power state"
        " && python -c 'from jumpstarter.utils import env\nwith env() as c: print(c.power.state())'"
    )
    result = _shell(commands, exporter, "--tls-ca", tmp_path / "ca.pem", "--token-file", tmp_path / "token",
                    script=script)  # fmt: skip
    assert result.returncode == 0, result
    assert result.stdout.splitlines() == ["switched on", "on", "on"], "one session for the shell's commands"
    assert "INFO Power: power is on" in result.stderr.splitlines(), "the exporter's logs, relayed"
    assert token not in result.stdout + result.stderr

    # The original's variable for the token works too.
    again = _shell(commands, exporter, "--tls-ca", tmp_path / "ca.pem", script="j power state",
                   JMP_GRPC_PASSPHRASE=token)  # fmt: skip
    assert again.returncode == 0, again
    exporter.stop()


THE_CERTIFICATE = "the exporter's certificate (the tls.crt that `jmp exporter run` printed)"


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ("wrong token", "refused the credentials: missing or wrong token"),
        ("no token", "refused the credentials: missing or wrong token"),
        (
            "forgot --tls-ca",
            "presented a TLS certificate that is not trusted here (self signed certificate): "
            f"give {THE_CERTIFICATE} with --tls-ca FILE (or JMP_TLS_CA)",
        ),
        (
            "another certificate",
            f"presented a TLS certificate that the certificates given to trust (--tls-ca) did not sign: give "
            f"{THE_CERTIFICATE}, which it makes anew when its names or addresses change",
        ),
        (
            "--insecure",
            "closed the connection without TLS (--insecure): it most likely uses TLS; drop --insecure and give "
            f"{THE_CERTIFICATE} with --tls-ca FILE",
        ),
        (
            "another name",
            "presented a TLS certificate that is not valid for the name 'bench-9.lab' (the certificate given to "
            "trust is valid for localhost, ",
        ),
    ],
)
def test_shell_over_tcp_mistakes(
    commands: Any, power_exporter: Any, tmp_path: Path, mistake: str, message: str
) -> None:
    exporter = power_exporter("--tcp", "127.0.0.1:0")
    certificate, _, token = exporter.tls()
    (tmp_path / "ca.pem").write_bytes(certificate)
    (tmp_path / "other.pem").write_bytes(TlsIdentity.self_signed(["127.0.0.1"]).certificate)
    (tmp_path / "token").write_text("not-the-token" if mistake == "wrong token" else token)
    trust, token_file = ["--tls-ca", tmp_path / "ca.pem"], ["--token-file", tmp_path / "token"]
    options: list[str | Path] = {
        "wrong token": [*trust, *token_file],
        "no token": trust,
        "forgot --tls-ca": token_file,
        "another certificate": ["--tls-ca", tmp_path / "other.pem", *token_file],
        "--insecure": ["--insecure", *token_file],
        "another name": [*trust, *token_file, "--tls-server-name", "bench-9.lab"],
    }[mistake]
    result = _shell(commands, exporter, *options, script="echo never")
    assert result.returncode == 3, result
    assert result.stderr.startswith(f"jmp: error: the exporter at {exporter.tcp} {message}"), result
    assert len(result.stderr.splitlines()) == 1, "one line: no gRPC log lines"
    if mistake == "another name":
        assert "127.0.0.1, ::1): connect with a name it is valid for, or give one with --tls-server-name NAME" in (
            result.stderr
        )
    assert result.stdout == "" and token not in result.stderr
    exporter.stop()


def test_shell_with_a_ca_file_that_is_not_pem(commands: Any, power_exporter: Any, write: Any, tmp_path: Path) -> None:
    exporter = power_exporter("--tcp", "127.0.0.1:0")
    certificate, _, token = exporter.tls()
    der = x509.load_pem_x509_certificate(certificate).public_bytes(Encoding.DER)
    (tmp_path / "bench.der").write_bytes(der)
    write("notes.txt", "the token is in the other file\n")
    key = tmp_path / "state" / "jumpstarter" / "exporters" / "bench-9" / "tls.key"
    for path, holds in [(tmp_path / "notes.txt", "no certificate"), (tmp_path / "bench.der", "a DER (binary) file"),
                        (key, "a private key")]:  # fmt: skip
        result = _shell(commands, exporter, "--tls-ca", path, script="echo never", JMP_TOKEN=token)
        assert result.returncode == 2, result
        assert result.stderr.startswith(
            f"jmp: error: --tls-ca {path} holds {holds}, not a PEM certificate (-----BEGIN CERTIFICATE-----): "
            "give the exporter's certificate, the tls.crt it printed when it started"
        ), result
        assert len(result.stderr.splitlines()) == 1, "one line: no gRPC log lines"
    exporter.stop()


def test_a_certificate_for_another_name_and_tls_server_name(commands: Any, power_exporter: Any, tmp_path: Path) -> None:
    # The certificate names 127.0.0.1; the exporter is reached at 127.0.0.2 (loopback too).
    identity = TlsIdentity.self_signed(["127.0.0.1"])
    (tmp_path / "lab.crt").write_bytes(identity.certificate)
    write_secret(tmp_path / "lab.key", identity.private_key)
    write_secret(tmp_path / "lab.token", b"lab-token\n")
    exporter = power_exporter(
        "--tcp", "127.0.0.2:0", "--tls-cert", str(tmp_path / "lab.crt"), "--tls-key", str(tmp_path / "lab.key"),
        "--token-file", str(tmp_path / "lab.token"),
    )  # fmt: skip
    address = re.search(r"serving on (127\.0\.0\.2:\d+)", exporter.stderr)
    assert address, exporter.stderr
    exporter.tcp = address[1]
    options = ["--tls-ca", tmp_path / "lab.crt", "--token-file", tmp_path / "lab.token"]
    refused = _shell(commands, exporter, *options, script="echo never")
    assert refused.returncode == 3, refused
    assert refused.stderr == (
        f"jmp: error: the exporter at {exporter.tcp} presented a TLS certificate that is not valid for the name "
        "'127.0.0.2' (the certificate given to trust is valid for 127.0.0.1): connect with a name it is valid for, "
        "or give one with --tls-server-name NAME\n"
    )
    # Its certificate is checked against the name given; j inside gets it too.
    accepted = _shell(commands, exporter, *options, "--tls-server-name", "127.0.0.1", script="j power on")
    assert (accepted.returncode, accepted.stdout) == (0, "switched on\n"), accepted
    exporter.stop()


def test_shell_over_plaintext_tcp(commands: Any, power_exporter: Any) -> None:
    exporter = power_exporter("--tcp", "127.0.0.1:0", "--insecure-no-auth")
    result = _shell(commands, exporter, "--insecure", script="j power on")
    assert result.returncode == 0 and result.stdout == "switched on\n", result
    refused = _shell(commands, exporter, script="echo never")  # TLS expected, plaintext found
    assert refused.returncode == 3, refused
    assert refused.stderr == (
        f"jmp: error: the exporter at {exporter.tcp} does not use TLS (it runs with --insecure-no-auth): "
        "connect with --insecure\n"
    )
    exporter.stop()


def test_the_exporter_going_away_mid_shell(commands: Any, power_exporter: Any, tmp_path: Path) -> None:
    exporter = power_exporter("--tcp", "127.0.0.1:0")
    certificate, _, token = exporter.tls()
    (tmp_path / "ca.pem").write_bytes(certificate)
    (tmp_path / "token").write_text(token)
    # The command waits, after its first `j`, until the test has stopped the exporter.
    script = "j power on && touch on; while [ ! -e gone ]; do sleep 0.05; done; j power state; echo j exited $?"
    shell = commands.start(
        "jmp", "shell", "--host", exporter.tcp, "--tls-ca", tmp_path / "ca.pem", "--token-file", tmp_path / "token",
        "--", "sh", "-c", script, JMP_DRIVERS_ALLOW="jmpcli_drivers.*",
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not (tmp_path / "on").exists():
        assert time.monotonic() < deadline and shell.process.poll() is None, shell.output()
        time.sleep(0.05)
    assert exporter.stop().returncode == 0
    (tmp_path / "gone").touch()
    result = shell.finish()
    assert result.returncode == 0, result
    assert result.stdout.splitlines() == ["switched on", "j exited 3"]
    assert "j: error: cannot reach the exporter" in result.stderr
    assert "lost the exporter (it stopped, or the connection broke)" in result.stderr, "the shell says so once"
    assert "Traceback" not in result.stderr


def test_the_state_dir_default_is_the_same_in_help_and_docs(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from jumpstarter.cli.jmp import main

    default = "$XDG_STATE_HOME/jumpstarter/exporters/NAME"
    help_text = " ".join(CliRunner().invoke(main, ["exporter", "run", "--help"]).output.split())
    docs = (Path(__file__).resolve().parents[2] / "docs" / "reference" / "command-line.md").read_text()
    section = docs[docs.index("## `jmp exporter run`") :]  # the first --state-dir row after it is its own
    row = next(line for line in section.splitlines() if line.startswith("| `--state-dir DIR` |"))
    for text in (help_text, row):
        assert f"default: {default}".replace("$", "") in text.replace("`", "").replace("$", ""), text
        assert "~/.local/state" in text
