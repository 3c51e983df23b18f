"""docs/lab/guide.md, followed as written: its blocks run in order on this machine, with real processes.

The second word of a block's info string says what the reader does with it (testsupport.doc_blocks):

- ``yaml FILE``: puts the block's keys in FILE (a new file, or one `jmp admin` wrote);
- ``console start``: starts a long-running command (controller, router, exporter) and waits for
  the lines the page shows it printing;
- ``console run``: runs each command to its end: it must succeed and print the lines shown;
- ``console fails``: runs each command to its end: it must fail and print the lines shown.

Other blocks are not run (commands for a real host's root: sudo, systemctl). The page's fixed
places become the test's own: the state directory, and the ports 8082-8084 become free ones.
"""

from __future__ import annotations

import re
import shlex
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from jumpstarter.testing import Commands, Process
from jumpstarter_controller.cli_controller import controller
from testsupport.doc_blocks import Block, Step, console_steps, fenced
from testsupport.systemd_units import parse_unit, verify_unit

PAGE = Path(__file__).resolve().parents[2] / "docs" / "lab" / "guide.md"
PAGE_PORTS = (8082, 8083, 8084)  # the controller, the router, the dashboard
STATE = "/var/lib/jumpstarter"
START_TIMEOUT = 90.0  # a controller's first start on 2 loaded cores: a bound, not a measure

pytestmark = pytest.mark.timeout(600)


def free_ports(count: int) -> list[int]:
    """`count` consecutive free ports (the dashboard's default port is the controller's + 2)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count > 65535:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as taken:
                    taken.bind(("127.0.0.1", port))
        except OSError:
            continue
        return list(range(base, base + count))
    raise AssertionError("no consecutive free ports")


class Reader:
    """Follows the page in a working directory of its own, with a home of its own."""

    def __init__(self, commands: Commands, state: Path) -> None:
        self.commands = commands
        ports = zip(PAGE_PORTS, free_ports(len(PAGE_PORTS)), strict=True)
        self.substitutions = {STATE: str(state), **{f":{page}": f":{ours}" for page, ours in ports}}
        self.started: dict[str, Process] = {}

    def text(self, page_text: str) -> str:
        for page, ours in self.substitutions.items():
            page_text = page_text.replace(page, ours)
        return page_text

    def follow(self, block: Block) -> None:
        what = block.words[0] if block.words else ""
        if block.language == "yaml" and what:
            self.put_keys(self.commands.directory / what, block)
        elif block.language == "console" and what == "start":
            (step,) = console_steps(block)
            self.start(step)
        elif block.language == "console" and what in ("run", "fails"):
            for step in console_steps(block):
                self.run(step, block, succeeds=what == "run")

    def put_keys(self, path: Path, block: Block) -> None:
        document = yaml.safe_load(path.read_text()) if path.exists() else {}
        document.update(yaml.safe_load(self.text(block.content)))
        path.write_text(yaml.safe_dump(document))

    def start(self, step: Step) -> None:
        command = self.text(step.command)
        process = self.commands.start("sh", "-c", f"exec {command}")
        expected = Step(command, [self.text(line) for line in step.output])
        process.wait_for(lambda out, err: expected.printed_by(f"{out}\n{err}"), timeout=START_TIMEOUT)
        self.started[shlex.split(command)[1]] = process  # controller, router, exporter

    def run(self, step: Step, block: Block, *, succeeds: bool) -> None:
        result = self.commands.run("sh", "-c", self.text(step.command), timeout=60)
        where = f"guide.md line {block.line}: {step.command}\n{result}"
        assert (result.returncode == 0) is succeeds, where
        assert Step(step.command, [self.text(line) for line in step.output]).printed_by(
            f"{result.stdout}\n{result.stderr}"
        ), where
        assert "Traceback" not in result.stderr, where


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[Reader]:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    # The reader's own ~/.config, as `jmp config client` finds it without XDG_CONFIG_HOME.
    with Commands(work, HOME=str(home), XDG_CONFIG_HOME=None) as commands:
        yield Reader(commands, tmp_path / "state")


def test_the_guide_runs_as_written(reader: Reader) -> None:
    blocks = fenced(PAGE)
    followed = [block for block in blocks if block.words and block.language in ("console", "yaml")]
    assert len(followed) >= 15, "the guide's runnable blocks were not found"
    for block in blocks:
        reader.follow(block)

    # The router carried the shell's streams: it counts them when stopped.
    router = reader.started["router"]
    router.process.send_signal(signal.SIGTERM)
    result = router.finish(timeout=30)
    carried = re.search(r"router stopped after (\d+) streams", result.stderr)
    assert carried is not None and int(carried.group(1)) >= 1, result
    # Stopped as systemd does, the controller first (with the exporter's streams open): no traceback.
    for name in ("controller", "exporter"):
        process = reader.started[name]
        process.process.send_signal(signal.SIGTERM)
        stopped = process.finish(timeout=60)
        assert stopped.returncode == 0 and "Traceback" not in stopped.stderr, stopped


def test_the_blocks_not_run_are_for_a_real_hosts_root() -> None:
    for block in fenced(PAGE, "console"):
        if not block.words:
            for step in console_steps(block):
                assert step.command.startswith(("sudo ", "journalctl ")), f"line {block.line}: {step.command}"


def controller_unit() -> str:
    (text,) = [block.content for block in fenced(PAGE, "ini") if "controller run" in block.content]
    return text


def test_the_controller_unit_runs_a_valid_command_and_restarts_it() -> None:
    service = parse_unit(controller_unit())["Service"]
    assert service["Restart"] == "always" and service["StateDirectory"] == "jumpstarter"
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/jmp") and argv[1:3] == ["controller", "run"]
    context = controller.commands["run"].make_context("run", argv[3:])  # refuses an unknown option
    assert context.params["state_dir"] == Path("/var/lib/jumpstarter")


def test_systemd_accepts_the_controller_unit(tmp_path: Path) -> None:
    verify_unit(controller_unit(), tmp_path / "jumpstarter-controller.service")
