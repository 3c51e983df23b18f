"""Running a lease hook (``hooks.beforeLease`` / ``hooks.afterLease``) on a pseudo-terminal.

The hook is a process group of its own whose stdin, stdout and stderr are a new
pseudo-terminal (so that its programs write line by line, as on a terminal). Each line it
writes is logged on the hook's logger (`HOOK_LOGGERS`), which the session in service sends
to its clients as hook output. ``JUMPSTARTER_HOST`` names a private socket serving the
lease's drivers, so ``j`` and ``jumpstarter.utils.env()`` reach them; ``LEASE_NAME`` and
``CLIENT_NAME`` say whose lease it is, as with the original. Past its ``timeout`` the group
gets SIGTERM, then SIGKILL; whatever the hook left running is stopped the same way when it
ends.
"""

from __future__ import annotations

import errno
import logging
import os
import pty
import re
import signal
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import anyio
from anyio.abc import Process

from jumpstarter.config.env import JMP_DRIVERS_ALLOW, JUMPSTARTER_HOST
from jumpstarter.config.exporter import HookConfig
from jumpstarter.exporter._logs import HOOK_LOGGERS

__all__ = ["HookFailure", "HookKind", "HookTail", "run_hook"]

HookKind = Literal["beforeLease", "afterLease"]

# How long a hook's process group has after SIGTERM before SIGKILL.
TERMINATE_GRACE_SECONDS: Final = 3.0
# How long the output still in the terminal is read after the hook ended.
DRAIN_SECONDS: Final = 2.0
# A line longer than this is cut into pieces: one log record each.
MAX_LINE: Final = 4096
# How much of a hook's last output goes into the status message that follows it.
TAIL_BYTES: Final = 4096
# Terminal escape sequences (colours, cursor moves): not text for a timeline.
_ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HookFailure:
    """Why a hook failed, in one line, and what its configuration says to do about it."""

    message: str
    on_failure: Literal["warn", "endLease", "exit"]


class HookTail:
    """The last lines a hook wrote, as printable text of at most `TAIL_BYTES` bytes (UTF-8).

    The controller link sends them in the status report that follows the hook, so that the
    lab's timeline shows why a hook failed (or what it did) without the exporter's log.
    """

    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self._limit = limit
        self._lines: deque[str] = deque()
        self._size = 0

    def add(self, line: str) -> None:
        printable = "".join(c for c in _ESCAPES.sub("", line) if c.isprintable() or c == "\t")
        encoded = printable.encode()
        if len(encoded) > self._limit:  # one huge line: its end is what matters
            printable = encoded[-self._limit :].decode(errors="ignore")
        self._lines.append(printable)
        self._size += len(printable.encode()) + 1
        while self._size - 1 > self._limit:
            self._size -= len(self._lines.popleft().encode()) + 1

    def text(self) -> str:
        return "\n".join(self._lines)


def hook_command(hook: HookConfig) -> list[str]:
    """The interpreter and its arguments: a script file runs as a file, other text with ``-c``.

    Without ``exec``, a ``.py`` file runs with the exporter's own Python (the jumpstarter
    client library at hand), anything else with ``/bin/sh``.
    """
    script = hook.script
    is_file = "\n" not in script.strip() and Path(script.strip()).is_file()
    if hook.exec_:
        interpreter = hook.exec_
    elif is_file and script.strip().endswith(".py"):
        interpreter = sys.executable
    else:
        interpreter = "/bin/sh"
    return [interpreter, script.strip()] if is_file else [interpreter, "-c", script]


def hook_environment(socket_path: str, lease_name: str, client_name: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PS1", None)  # no prompt in the output
    bin_dir = str(Path(sys.executable).parent)  # the `j` of this exporter first
    env.update(
        {
            "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
            JUMPSTARTER_HOST: socket_path,
            JMP_DRIVERS_ALLOW: "UNSAFE",  # the exporter's own drivers, on its own host
            "LEASE_NAME": lease_name,
            "CLIENT_NAME": client_name,
            # A terminal for line buffering, not for a person: no colours, prompts or pagers.
            "TERM": "dumb",
            "DEBIAN_FRONTEND": "noninteractive",
            "GIT_TERMINAL_PROMPT": "0",
        }
    )
    return env


async def run_hook(
    kind: HookKind,
    hook: HookConfig,
    *,
    socket_path: str,
    lease_name: str,
    client_name: str,
    tail: HookTail | None = None,
) -> HookFailure | None:
    """Run `hook` to its end (or its timeout); None if it succeeded, else why it failed.

    `tail`, if given, keeps the last of the hook's output."""
    output = logging.getLogger(HOOK_LOGGERS[kind])
    if output.level == logging.NOTSET:  # a hook's every line is for its clients, as a driver's records are
        output.setLevel(logging.INFO)
    command = hook_command(hook)
    parent, child = pty.openpty()
    try:
        os.set_blocking(parent, False)
        try:
            process = await anyio.open_process(
                command,
                stdin=child,
                stdout=child,
                stderr=child,
                env=hook_environment(socket_path, lease_name, client_name),
                start_new_session=True,  # a process group to stop, and the terminal its own
            )
        except OSError as error:
            return HookFailure(f"{kind} hook could not start {command[0]}: {error.strerror or error}", hook.on_failure)
        finally:
            os.close(child)  # the hook's copy is the only one: its end closes the terminal
        logger.info("%s hook started for lease %s (process %d)", kind, lease_name, process.pid)
        relayed = anyio.Event()
        async with process, anyio.create_task_group() as tasks:
            tasks.start_soon(_relay, parent, output, relayed, tail)
            with anyio.move_on_after(hook.timeout) as deadline:
                await process.wait()
            timed_out = deadline.cancelled_caught
            await _stop_group(process, relayed)  # what it left running, or all of it past the timeout
            with anyio.move_on_after(DRAIN_SECONDS):  # the output still on its way
                await relayed.wait()
            tasks.cancel_scope.cancel()
    finally:
        os.close(parent)
    code = process.returncode
    if timed_out:
        message = f"{kind} hook ran past its timeout of {hook.timeout} s: its processes were stopped"
    elif code == 0:
        logger.info("%s hook succeeded", kind)
        return None
    elif code is not None and code < 0:
        message = f"{kind} hook was killed by signal {signal.Signals(-code).name}"
    else:
        message = f"{kind} hook exited with code {code}"
    return HookFailure(message, hook.on_failure)


async def _relay(fd: int, output: logging.Logger, done: anyio.Event, tail: HookTail | None) -> None:
    """Log each line the hook writes, until its terminal closes (EIO once no process holds it)."""

    def emit(line: str) -> None:
        output.info("%s", line)
        if tail is not None:
            tail.add(line)

    pending = b""
    try:
        while True:
            await anyio.wait_readable(fd)
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError as error:
                if error.errno != errno.EIO:
                    raise
                data = b""
            if not data:
                break
            pending += data.replace(b"\r\n", b"\n")
            *lines, pending = pending.split(b"\n")
            if len(pending) > MAX_LINE:
                lines, pending = [*lines, pending], b""
            for line in lines:
                emit(line.decode(errors="replace").rstrip())
    finally:
        if pending:
            emit(pending.decode(errors="replace").rstrip())
        done.set()


async def _stop_group(process: Process, terminal_closed: anyio.Event) -> None:
    """SIGTERM to the hook's process group, SIGKILL to what is left of it after the grace.

    The group has ended when its terminal closes (no process holds it any more), or earlier
    for the processes that let go of it: those get SIGKILL when the grace is over.
    """
    pgid = process.pid  # the leader of a new session: its pid is the group's id
    with anyio.CancelScope(shield=True):
        if _signal_group(pgid, signal.SIGTERM):
            with anyio.move_on_after(TERMINATE_GRACE_SECONDS):
                await process.wait()
                await terminal_closed.wait()
            _signal_group(pgid, signal.SIGKILL)
        with anyio.move_on_after(TERMINATE_GRACE_SECONDS):
            await process.wait()


def _signal_group(pgid: int, signum: int) -> bool:
    """Send `signum` to the group; False once no process is left in it."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of the group changed its user: it is still there
        return True
    return True
