"""`j`: the driver tree of the enclosing ``jmp shell`` as a command line.

    $ jmp shell --exporter-config bench.yaml
    $ j power on
    $ j serial pipe

`j` connects to the exporter named by ``JUMPSTARTER_HOST`` (see `jumpstarter.utils.env`),
asks the root client for its click group (`DriverClient.cli()`: every driver's group under
its name, with the commands its client class adds) and runs it. The connection lasts one
command, with no log stream of its own: the shell prints the exporter's logs.

Exit codes: 0 done; 1 a driver call (or the client's command) failed; 2 a usage error; 3
the exporter cannot be reached, or ``JUMPSTARTER_HOST`` is unset; 130 interrupted. An
error is one line, ``j: error: <message>``, on stderr; ``--log-level DEBUG`` adds the
traceback.

Shell completion uses click's mechanism: ``eval "$(_J_COMPLETE=bash_source j)"`` (or
``zsh_source``, ``fish_source``) in the shell's rc file. Completing reads the tree from the
exporter, so it only offers drivers inside ``jmp shell``; it never prints errors.

This module is the script's process: garbage collection paused while it starts, a quick
exit (see `jumpstarter.cli.short_lived`); the command itself is `jumpstarter.cli.j_command`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

from jumpstarter.cli.short_lived import leave, pause_garbage_collection


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``j`` script: it ends with the `jmp shell` it runs in (see `jumpstarter.cli.lifetime`)."""
    pause_garbage_collection()  # before the imports, most of the command's start
    from jumpstarter.cli.j_command import run
    from jumpstarter.cli.lifetime import end_with_shell

    end_with_shell()
    leave(run(sys.argv[1:] if argv is None else list(argv)))
