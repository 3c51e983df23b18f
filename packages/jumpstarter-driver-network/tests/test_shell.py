"""End to end: the network drivers through `jmp shell --exporter-config FILE -- sh -c SCRIPT`, as real processes.

`jmp shell` serves the config's drivers in its own process; the script's `j` commands reach
them, and its forwards run as background jobs, as a user's script would run them
(``j web forward-tcp > web.address &``). The targets are real servers on loopback in the
test process (conftest.py); the clients are small programs of testsupport.network_shell
that the script runs, and that print one line per result. The tests compare the shell's
stdout and stderr with exact lines.

A shell takes about a second to start and each `j` half a second: the address and help
commands share one shell (`bench`), and each forward test runs its rounds in one shell.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from jumpstarter.testing import CommandResult, sections
from testsupport.network import HttpSite, UdpPeer, free_port
from testsupport.network_shell import digest, run_jmp_shell

FORWARDING = "forwarding; press Ctrl-C to stop"  # a forward's status line, on stderr
LOOPBACK_ADDRESS = re.compile(r"127\.0\.0\.1:\d+")
PRIVATE_SOCKET = re.compile(r"/.+/jumpstarter-forward-[^/]+/socket")
# What stops a forward: `kill` (SIGTERM, as service managers send) and Ctrl-C (SIGINT).
SIGNALS = ("TERM", "INT")

# -- address and help: one shell --------------------------------------------------------------

# Addresses that nothing needs to answer: `address` asks the exporter, not the target.
BENCH_CONFIG = """\
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: bench
description: The network bench of the shell tests
export:
  web:
    type: TcpNetwork
    description: Web UI of the board
    methods_description:
      forward-tcp: Open the web UI on a local port
    config:
      host: 192.0.2.7
      port: 8080
  tftp:
    type: UdpNetwork
    config:
      host: "2001:db8::7"
      port: 69
  monitor:
    type: UnixNetwork
    config:
      path: /run/qemu/board-3/monitor.sock
  hidden:
    type: TcpNetwork
    config:
      host: 192.0.2.7
      port: 22
      enable_address: false
"""

BENCH_COMMANDS = (
    "j web address",
    "j web address --host",
    "j web address --port",
    "j tftp address",
    "j monitor address",
    "j hidden address",
    "j --help",
    "j web --help",
    "j web forward-tcp --help",
)


@dataclass
class Outcome:
    """What one command of the bench printed, and its exit status."""

    stdout: list[str]
    stderr: list[str]
    returncode: int


@dataclass
class Bench:
    shell: CommandResult
    outcomes: dict[str, Outcome]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    # Each command's output is marked on both streams, so that an error line belongs to its command.
    script = "".join(
        f'echo "## {command}"; echo "## {command}" >&2; {command}; echo "rc=$?"\n' for command in BENCH_COMMANDS
    )
    shell = run_jmp_shell(BENCH_CONFIG, script, tmp_path_factory.mktemp("bench"))
    stdout, stderr = sections(shell.stdout), sections(shell.stderr)
    outcomes = {}
    for command, lines in stdout.items():
        assert lines and lines[-1].startswith("rc="), f"{command} did not finish\n{shell}"
        *printed, status = lines
        outcomes[command] = Outcome(printed, stderr.get(command, []), int(status.removeprefix("rc=")))
    return Bench(shell, outcomes)


def test_the_bench_shell_ran_every_command(bench: Bench) -> None:
    assert bench.shell.returncode == 0, bench.shell
    assert list(bench.outcomes) == list(BENCH_COMMANDS), bench.shell
    assert "Traceback" not in bench.shell.stderr


@pytest.mark.parametrize(
    ("command", "printed"),
    [
        ("j web address", "192.0.2.7:8080"),
        ("j web address --host", "192.0.2.7"),
        ("j web address --port", "8080"),
        ("j tftp address", "[2001:db8::7]:69"),  # an IPv6 host in brackets, so that the port stands apart
        ("j monitor address", "/run/qemu/board-3/monitor.sock"),
    ],
)
def test_address(bench: Bench, command: str, printed: str) -> None:
    assert bench.outcomes[command] == Outcome([printed], [], 0)


def test_address_hidden_by_the_config_is_one_error_line(bench: Bench) -> None:
    assert bench.outcomes["j hidden address"] == Outcome(
        [],
        [
            "j: error: TcpNetwork does not tell its address: enable_address is false in the exporter's "
            "configuration; connect through the driver instead (j <name> forward-tcp)"
        ],
        1,
    )


def test_help_lists_the_drivers_under_the_config_s_description(bench: Bench) -> None:
    outcome = bench.outcomes["j --help"]
    assert (outcome.returncode, outcome.stderr) == (0, [])
    # The root's description replaces j's own help text; a driver without one shows its client's.
    assert outcome.stdout[:3] == ["Usage: j [OPTIONS] COMMAND [ARGS]...", "", "  The network bench of the shell tests"]
    assert command_lines(outcome.stdout) == [
        "  hidden   A network port near the exporter: TCP, UDP or a Unix socket.",
        "  monitor  A network port near the exporter: TCP, UDP or a Unix socket.",
        "  tftp     A network port near the exporter: TCP, UDP or a Unix socket.",
        "  web      Web UI of the board",
    ]


def test_help_of_a_driver_takes_the_config_s_texts(bench: Bench) -> None:
    outcome = bench.outcomes["j web --help"]
    assert (outcome.returncode, outcome.stderr) == (0, [])
    assert outcome.stdout[:3] == ["Usage: j web [OPTIONS] COMMAND [ARGS]...", "", "  Web UI of the board"]
    # methods_description replaces forward-tcp's docstring; the other commands keep theirs.
    assert command_lines(outcome.stdout) == [
        "  address       Print the target's address as the exporter reaches it:...",
        "  forward-tcp   Open the web UI on a local port",
        "  forward-udp   Forward a local UDP port to a UdpNetwork's target,...",
        "  forward-unix  Forward a local Unix socket to the target: each...",
    ]
    outcome = bench.outcomes["j web forward-tcp --help"]
    assert (outcome.returncode, outcome.stderr) == (0, [])
    assert outcome.stdout[:3] == ["Usage: j web forward-tcp [OPTIONS] [PORT]", "", "  Open the web UI on a local port"]


def command_lines(help_text: list[str]) -> list[str]:
    """The lines after ``Commands:`` in a click help text."""
    return help_text[help_text.index("Commands:") + 1 :]


# -- forwards: one shell per test, a round per signal --------------------------------------


def one_driver_config(name: str, driver_type: str, **config: object) -> str:
    """An exporter config that serves one driver, `name`, of `driver_type` with `config`."""
    settings = ", ".join(f"{key}: {value}" for key, value in config.items())
    return f"metadata:\n  name: bench\nexport:\n  {name}:\n    type: {driver_type}\n    config: {{{settings}}}\n"


def forward_rounds(j_args: str, use: str, kind: str, signals: Sequence[str]) -> str:
    """A script that, for each signal, starts the forward, runs `use` through it, stops it with the signal.

    Each round prints ``## SIGNAL``, ``address=...``, what `use` printed, ``exit=N`` and
    whether the address is closed afterwards (``client closed``).
    """
    return "".join(
        f'echo "## {signal}"\n'
        f"start_forward forward.out {j_args}\n"
        f"{use}\n"
        f"stop_forward {signal}\n"
        f'client closed {kind} "$address"\n'
        for signal in signals
    )


def run_forward_rounds(config: str, script: str, directory: Path, signals: Sequence[str]) -> dict[str, list[str]]:
    """Run the rounds; check that the shell ended well and each forward printed its status; the rounds' lines."""
    shell = run_jmp_shell(config, script, directory)
    assert shell.returncode == 0, shell
    assert shell.stderr.splitlines() == [FORWARDING] * len(signals), shell
    rounds = sections(shell.stdout)
    assert list(rounds) == list(signals), shell
    return rounds


def printed_address(lines: list[str]) -> str:
    assert lines and lines[0].startswith("address="), lines
    return lines[0].removeprefix("address=")


def test_forward_tcp_serves_pages_until_sigterm(http_site: HttpSite, tmp_path: Path) -> None:
    # Several requests, one of them large (8 MiB), each a connection of its own; then SIGTERM.
    pages = ["page3.html", "big.bin", "page0.html"]
    script = forward_rounds("web forward-tcp", f'client http-get "$address" {" ".join(pages)}', "tcp", ["TERM"])
    host, port = http_site.address
    rounds = run_forward_rounds(
        one_driver_config("web", "TcpNetwork", host=host, port=port), script, tmp_path / "shell", ["TERM"]
    )
    address = printed_address(rounds["TERM"])
    assert LOOPBACK_ADDRESS.fullmatch(address)
    assert rounds["TERM"] == [
        f"address={address}",
        *(f"{page} 200 {digest(http_site.pages[page])}" for page in pages),
        "exit=0",
        "refused",  # the forward stopped listening
    ]


def test_forward_unix_echoes_until_a_signal_and_removes_its_socket(unix_echo: str, tmp_path: Path) -> None:
    config = one_driver_config("monitor", "UnixNetwork", path=unix_echo)
    # Two connections per round: each is a new one to the target, which says <bye> after our end.
    use = 'client echo "$address" first; client echo "$address" second'
    script = forward_rounds("monitor forward-unix", use, "unix", SIGNALS)
    rounds = run_forward_rounds(config, script, tmp_path / "shell", SIGNALS)
    for signal in SIGNALS:
        address = printed_address(rounds[signal])
        assert PRIVATE_SOCKET.fullmatch(address)
        assert rounds[signal] == [
            f"address={address}",
            "first<bye>",
            "second<bye>",
            "exit=0",
            "socket removed, directory removed",
        ], signal


def test_forward_udp_relays_datagrams_until_a_signal(udp_echo: UdpPeer, tmp_path: Path) -> None:
    config = one_driver_config("tftp", "UdpNetwork", host=udp_echo.address[0], port=udp_echo.address[1])
    # An empty datagram between two others: boundaries survive the forward, both ways.
    use = 'client udp-echo "$address" one "" two'
    script = forward_rounds("tftp forward-udp", use, "udp", SIGNALS)
    rounds = run_forward_rounds(config, script, tmp_path / "shell", SIGNALS)
    for signal in SIGNALS:
        address = printed_address(rounds[signal])
        assert LOOPBACK_ADDRESS.fullmatch(address)
        assert rounds[signal] == [f"address={address}", "b'one'", "b''", "b'two'", "exit=0", "refused"], signal
    assert udp_echo.received == [b"one", b"", b"two"] * len(SIGNALS)


def test_forward_tcp_to_a_refused_target_resets_each_connection_and_logs_why(tmp_path: Path) -> None:
    target_port = free_port()  # nothing listens there
    use = 'client request "$address" "GET / HTTP/1.0"; client request "$address" again'
    script = forward_rounds("web forward-tcp", use, "tcp", ["TERM"])
    shell = run_jmp_shell(
        one_driver_config("web", "TcpNetwork", host="127.0.0.1", port=target_port), script, tmp_path / "shell"
    )
    assert shell.returncode == 0, shell
    lines = sections(shell.stdout)["TERM"]
    address = printed_address(lines)
    # A reset at once, not an end of stream (which could pass for an empty answer) nor a hang;
    # the forward goes on serving: the second connection gets the same, and SIGTERM stops it.
    assert lines == [f"address={address}", "reset", "reset", "exit=0", "refused"], shell
    # Why, on the forward's stderr (the shell's), once per connection; the exporter logs nothing.
    reason = (
        f"WARNING jumpstarter.clients.NetworkClient: forward TCP {address}: connection reset: "
        f"cannot connect to TCP 127.0.0.1:{target_port}: connection refused (nothing listens there)"
    )
    assert shell.stderr.splitlines() == [FORWARDING, reason, reason]
