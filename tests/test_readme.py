"""The README's main command, run exactly as written, with the lines it suggests typing in the shell.

Twice: with the lines piped to the shell, and typed at the prompt of an interactive shell
on a pseudo-terminal, as a user does. The interactive shell reads the user's rc file, and
the user's here manages Python as pyenv, conda or asdf do: it puts another `python`,
`pytest` (and `j`) first on PATH. Inside `jmp shell` the environment's own must win.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pexpect
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120
BIN_DIR = Path(sys.executable).parent


def console_blocks(text: str) -> list[list[str]]:
    """The commands (the text after ``$ ``, without a trailing comment) of each ```console block."""
    blocks = re.findall(r"```console\n(.*?)```", text, re.DOTALL)
    return [
        [line[2:].split("  #")[0].strip() for line in block.splitlines() if line.startswith("$ ")] for block in blocks
    ]


def readme_commands() -> tuple[str, list[str]]:
    """The README's main command and the lines it suggests typing in the shell."""
    text = (ROOT / "README.md").read_text()
    two_commands = text[text.index("## Two commands") : text.index("## On a real lab")]
    (setup_and_run, test_command), typed_lines = console_blocks(two_commands)
    assert test_command == "uv run pytest"
    assert setup_and_run == "uv run jmp shell --exporter-config examples/local.yaml"
    assert typed_lines[-1] == "exit"
    if shutil.which("uv") is None:
        pytest.fail("uv is not on PATH: the README's commands need it (pip install uv)")
    return setup_and_run, typed_lines


def assert_the_lines_worked(stdout: str) -> None:
    # j --help: the drivers of the bench, described by its configuration.
    assert re.search(r"^  power\s+The board's power", stdout, re.MULTILINE), stdout
    # j power on, then three readings.
    assert "power on\n" in stdout
    assert len(re.findall(r"^voltage=5\.0 V  current=2\.0 A", stdout, re.MULTILINE)) == 3, stdout
    # The serial port loops back what the pipe sends.
    assert "\nhello\n" in stdout
    # The script and the tests of the examples.
    assert "power: on, 5.0 V, 2.0 A\nserial: the console answered\nnet: hello\n" in stdout, stdout
    assert "2 passed" in stdout, stdout


def test_the_main_command_and_the_lines_to_try() -> None:
    setup_and_run, typed_lines = readme_commands()
    # The shell reads the typed lines from its standard input: not a terminal, so no banner.
    environment = {**os.environ, "SHELL": "/bin/sh"}
    process = subprocess.Popen(
        shlex.split(setup_and_run),
        cwd=ROOT,
        env=environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate("\n".join(typed_lines) + "\n", timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    assert process.returncode == 0, f"exit {process.returncode}\n{stdout}\n{stderr}"
    assert_the_lines_worked(stdout)
    # The drivers' logs, in the shell.
    assert "INFO MockPower: power on" in stderr.splitlines()
    assert "Traceback" not in stderr
    assert "runs here" not in stderr, "no banner when nobody reads it at a terminal"


# -- at the prompt of the user's own interactive shell -------------------------------------

# What the user's rc file puts first on PATH: a python, pytest and j of another environment.
SHADOW = '#!/bin/sh\necho "the rc file\'s $(basename "$0"), not the environment\'s" >&2\nexit 99\n'
SHADOWED = ("python", "python3", "pytest", "j")
PROMPT = "bench$ "

# Each shell's rc file, as pyenv, conda or asdf write it: their directory first on PATH.
RC_FILES = {
    "bash": (".bashrc", f'export PATH="$HOME/shadow:$PATH"\nPS1={shlex.quote(PROMPT)}\n'),
    "sh": (".shrc", f'PATH="$HOME/shadow:$PATH"; export PATH\nPS1={shlex.quote(PROMPT)}\n'),
    "zsh": (".zshrc", f'export PATH="$HOME/shadow:$PATH"\nPS1={shlex.quote(PROMPT)}\n'),
    "fish": (
        ".config/fish/config.fish",
        f"set -gx PATH $HOME/shadow $PATH\nfunction fish_prompt; echo -n {shlex.quote(PROMPT)}; end\n",
    ),
}


def user_home(home: Path, shell: str) -> dict[str, str]:
    """A home whose rc file for `shell` shadows the environment's commands; the variables to set."""
    (home / "shadow").mkdir(parents=True)
    for name in SHADOWED:
        script = home / "shadow" / name
        script.write_text(SHADOW)
        script.chmod(0o755)
    name, text = RC_FILES[shell]
    (home / name).parent.mkdir(parents=True, exist_ok=True)
    (home / name).write_text(text)
    variables = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    if shell == "sh":
        variables["ENV"] = str(home / ".shrc")  # where a POSIX shell's interactive rc file is
    if shell == "fish":
        # A home where fish has run before. In a new one, fish's first prompt starts a python in the
        # background that parses every man page for completions, on the terminal: a minute's work on a
        # loaded machine, and the terminal sees no end of file until it is done.
        (home / ".local" / "share" / "fish" / "generated_completions").mkdir(parents=True)
    return variables


class Terminal:
    """A command on a pseudo-terminal, typed at like a user does."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.child = pexpect.spawn(
            argv[0], argv[1:], env=env, cwd=str(cwd), encoding="utf-8", timeout=TIMEOUT, dimensions=(50, 250)
        )
        self.transcript: list[str] = []

    def expect(self, pattern: str | type[pexpect.EOF]) -> str:
        """Wait for `pattern` (a regular expression); return what came before it, with Unix line ends."""
        try:
            self.child.expect(pattern)
        except (pexpect.TIMEOUT, pexpect.EOF):
            raise AssertionError(f"never saw {pattern!r}; the terminal showed:\n{self.screen()}") from None
        before = self.child.before.replace("\r\n", "\n")
        after = self.child.after
        self.transcript.append(before + (after if isinstance(after, str) else ""))
        return before

    def type(self, line: str, prompt: str) -> str:
        """Type `line` and Enter; return what it printed, up to the next `prompt`."""
        self.child.sendline(line)
        return self.expect(prompt).split("\n", 1)[-1]  # after the echo of the typed line

    def screen(self) -> str:
        return "".join(self.transcript) + str(self.child.before)

    def close(self) -> None:
        try:
            processes = [psutil.Process(self.child.pid), *psutil.Process(self.child.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            processes = []
        for process in processes:
            with suppress(psutil.NoSuchProcess):
                process.kill()
        self.child.close(force=True)


@pytest.fixture
def terminal() -> Iterator[list[Terminal]]:
    started: list[Terminal] = []
    yield started
    for running in started:
        running.close()


def test_the_lines_to_try_at_the_prompt_of_a_shell_whose_rc_file_shadows_python(
    tmp_path: Path, terminal: list[Terminal]
) -> None:
    setup_and_run, typed_lines = readme_commands()
    env = {**os.environ, **user_home(tmp_path / "home", "bash"), "SHELL": shutil.which("bash") or "/bin/bash"}
    env.pop("NO_COLOR", None)
    env["TERM"] = "dumb"  # no colours in what the test reads; the prompt is the user's
    shell = Terminal(shlex.split(setup_and_run), env, ROOT)
    terminal.append(shell)
    banner = shell.expect(re.escape(f"(jmp local-bench) {PROMPT}"))
    assert "jmp: exporter local-bench runs here (local mode)" in banner, "the banner, at a terminal"

    outputs = []
    for line in typed_lines[:-1]:
        outputs.append(shell.type(line, re.escape(f"(jmp local-bench) {PROMPT}")))
    shell.child.sendline("exit")
    shell.expect(pexpect.EOF)
    shell.child.close()
    assert shell.child.exitstatus == 0, shell.screen()

    everything = "".join(outputs)
    assert "not the environment's" not in everything, everything
    assert_the_lines_worked(everything)
    assert "Traceback" not in everything


@pytest.mark.parametrize("shell_name", ["bash", "sh", "zsh", "fish"])
def test_python_pytest_and_j_are_the_environments_in_every_shell(
    tmp_path: Path, terminal: list[Terminal], shell_name: str
) -> None:
    program = shutil.which(shell_name)
    if program is None:
        pytest.skip(f"{shell_name} is not installed (CI installs it)")
    env = {**os.environ, **user_home(tmp_path / "home", shell_name), "SHELL": program, "TERM": "dumb"}
    # The environment's jmp, run by its path, from a PATH that does not hold it.
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    env.pop("VIRTUAL_ENV", None)
    config = ROOT / "examples" / "local.yaml"
    shell = Terminal([str(BIN_DIR / "jmp"), "shell", "--exporter-config", str(config)], env, tmp_path)
    terminal.append(shell)
    shell.expect(re.escape(f"(jmp local-bench) {PROMPT}"))  # the user's prompt, marked

    def run(line: str) -> str:
        # Each shell redraws its prompt in its own way: wait for a mark the command prints.
        shell.child.sendline(f"{line}; echo command-done")
        printed = shell.expect(r"\ncommand-done\r?\n").replace("\r", "")
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", printed)  # without the terminal's control sequences

    for name in ("python", "pytest", "j"):
        located = re.findall(r"^(/\S+)\s*$", run(f"command -v {name}"), re.MULTILINE)
        assert located == [str(BIN_DIR / name)], shell.screen()
    assert "power on" in run("j power on")
    assert "\njumpstarter" in run("python -c 'import jumpstarter; print(jumpstarter.__name__)'")
    shell.child.sendline("exit")
    shell.expect(pexpect.EOF)
    shell.child.close()
    assert shell.child.exitstatus == 0, shell.screen()
