"""Test support that ships with jumpstarter: serving driver trees, and running `jmp` as users do.

Serving, in the test's own process and over a real gRPC connection:

- `serve(root)` / `serve_async(root)`: the drivers and a client of them, for tests and
  examples of drivers and clients (also importable as ``jumpstarter.common.utils.serve``,
  the original's path);
- `serve_socket(root)` / `serve_socket_async(root)`: the drivers on a private Unix socket,
  for tests that connect to it themselves (``connect(path)``, ``j``, another process...);
  ``jmp shell`` serves its local exporter this way too.

The drivers behave as they would behind an exporter: one session resets them on entry and
closes them on exit, and every call crosses a real socket.

Processes: `Commands` starts `jmp`, `j` and other programs for a test, each in a process
group of its own, in an environment without the user's exporter, allow-list or client
configuration (`jmp_environment`), and kills them all at the end; `Commands.shell` runs
``jmp shell --exporter-config FILE -- COMMAND`` and returns its `CommandResult`.

The pytest plugin (`jumpstarter.pytest_plugin`) has fixtures for both:
``jumpstarter_socket`` and ``jumpstarter_commands``.
"""

from jumpstarter.testing._processes import (
    BIN,
    CommandResult,
    Commands,
    Process,
    group_gone,
    jmp_environment,
    jmp_shell_command,
    sections,
)
from jumpstarter.testing._serving import serve, serve_async, serve_socket, serve_socket_async

__all__ = [
    "BIN",
    "CommandResult",
    "Commands",
    "Process",
    "group_gone",
    "jmp_environment",
    "jmp_shell_command",
    "sections",
    "serve",
    "serve_async",
    "serve_socket",
    "serve_socket_async",
]
