"""The process of a short-lived command (`j`): no garbage collection while it starts, no teardown when it ends.

`j power on` runs for a fraction of a second, most of it starting (importing gRPC, click and
the client) and ending. Two costs there do nothing for such a process:

- the cyclic garbage collector, which passes over every object of the modules being
  imported, again and again while their objects pile up: it is paused while the command
  starts, and resumed before the command runs, the objects made so far set aside
  (`gc.freeze`) so that a long command (``j serial pipe``) does not pass over them either;
- the interpreter's teardown at exit (collecting every module's objects, gRPC's too), which
  takes longer than the command: `leave` ends the process at once once nothing is left to
  do, after the exit handlers (logging's flush...), a collection of the command's own
  garbage (closing the files it dropped) and a flush of the standard streams.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
from typing import NoReturn

_paused = False


def pause_garbage_collection() -> None:
    """No cyclic garbage collection until `resume_garbage_collection` (the start of a command)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_garbage_collection() -> None:
    """Collect again, as usual, except the objects made until now; nothing if not paused here."""
    global _paused
    if _paused:
        gc.freeze()
        gc.enable()
        _paused = False


def leave(code: int) -> NoReturn:
    """End the process with exit status `code`, skipping the interpreter's teardown when nothing is lost by it.

    With another thread still running (one that is not a daemon), Python's own exit waits for
    it, as always.
    """
    main = threading.main_thread()
    if any(thread is not main and not thread.daemon for thread in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()  # logging's flush and close, and any a client class registered
    resume_garbage_collection()  # when the command did not run: it sets the start-up's objects aside
    gc.collect()  # only the command's objects: files it dropped get closed
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        sys.exit(code)  # Python's exit reports it as usual
    os._exit(code)
