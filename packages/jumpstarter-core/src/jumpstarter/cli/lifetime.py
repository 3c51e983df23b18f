"""Commands started inside `jmp shell` end with it.

An interactive shell leaves its background jobs running when it exits (``j net
forward-tcp 8080 &``, then ``exit``): such a helper would hold its port for good, driving
an exporter that is gone. `jmp shell` names itself in ``JMP_SHELL_PID``; `j` watches that
process and, once it has ended, sends itself SIGTERM, which its commands handle as a
request to stop (a forward closes its listener, a pipe flushes what it has).

The watch costs no polling where the kernel has pidfds (Linux 5.3 and later): a thread
waits for the process's pidfd to become readable. Elsewhere it checks once a second.
"""

from __future__ import annotations

import os
import select
import signal
import threading
from collections.abc import Mapping

JMP_SHELL_PID = "JMP_SHELL_PID"

_POLL_SECONDS = 1.0


def end_with_shell(environ: Mapping[str, str] = os.environ) -> None:
    """If run inside `jmp shell`, SIGTERM this process once that shell has ended."""
    text = environ.get(JMP_SHELL_PID, "")
    if not text.isdigit() or int(text) == os.getpid():
        return
    pid = int(text)
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # gone already: the exporter it served is too, which the command will say
    except (AttributeError, OSError):  # no pidfds here: check now and then
        descriptor = None
    # A daemon thread: it only waits, and ends with the process.
    threading.Thread(target=_watch, args=(pid, descriptor), name="jmp-shell-watch", daemon=True).start()


def _watch(pid: int, descriptor: int | None) -> None:
    if descriptor is not None:
        select.select([descriptor], [], [])
    else:
        while _alive(pid):
            select.select([], [], [], _POLL_SECONDS)
    _stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
