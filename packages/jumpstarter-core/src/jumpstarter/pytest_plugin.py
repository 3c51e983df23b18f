"""The pytest plugin of jumpstarter (entry point ``pytest11``): its fixtures.

- ``jumpstarter_client``: the client of the exporter of the enclosing ``jmp shell``;
- ``jumpstarter_socket``: serves driver trees on private Unix sockets for the test;
- ``jumpstarter_commands``: runs ``jmp``, ``j`` and other programs for the test
  (`jumpstarter.testing.Commands`), and kills what they leave at its end.

Run the tests that use ``jumpstarter_client`` inside a shell of the exporter:

    $ jmp shell --exporter-config exporter.yaml -- pytest

and ask for the client of its driver tree:

    def test_boot(jumpstarter_client):
        jumpstarter_client.power.on()

The fixture connects once per test session. Without ``jmp shell`` the tests that use it
fail at setup with one line saying how to run them; the others run as usual.

pytest loads this module in every run of anyone who installed jumpstarter-core: it imports
nothing but pytest until a test asks for one of its fixtures. Disable it with
``-p no:jumpstarter``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from jumpstarter.client import DriverClient
    from jumpstarter.driver import Driver
    from jumpstarter.exporter import SessionProvider
    from jumpstarter.testing import Commands

_NOT_IN_SHELL = "run pytest inside jmp shell: jmp shell --exporter-config FILE -- pytest"


@pytest.fixture(scope="session")
def jumpstarter_client() -> Iterator[DriverClient]:
    """The root client of the exporter of the enclosing ``jmp shell`` (see `jumpstarter.client.environment`)."""
    from jumpstarter.config.env import JUMPSTARTER_HOST

    if not os.environ.get(JUMPSTARTER_HOST):
        pytest.fail(_NOT_IN_SHELL, pytrace=False)

    from jumpstarter.client import DriverConnectionError
    from jumpstarter.client.environment import env
    from jumpstarter.config.yaml import ConfigError

    with ExitStack() as stack:
        try:
            client = stack.enter_context(env())
        except (LookupError, DriverConnectionError, ConfigError) as error:
            # Inside a shell, but its exporter is gone or the environment is wrong: say which.
            pytest.fail(f"jumpstarter_client: {error}", pytrace=False)
        yield client


@pytest.fixture
def jumpstarter_socket() -> Iterator[Callable[[Driver | SessionProvider], str]]:
    """Serve driver trees for the test: ``jumpstarter_socket(root)`` returns the path of a private
    Unix socket serving `root` (a tree, or a session provider) until the test ends.

    The trees run in this process, on event loops in background threads, as
    `jumpstarter.testing.serve_socket` runs them: connect with ``connect(path)``, or hand the
    path to a program as ``JUMPSTARTER_HOST``.
    """
    from jumpstarter.testing import serve_socket

    with ExitStack() as stack:
        yield lambda root: stack.enter_context(serve_socket(root))


@pytest.fixture
def jumpstarter_commands(tmp_path: Path) -> Iterator[Commands]:
    """`jumpstarter.testing.Commands` in the test's temporary directory: ``run``, ``start`` and
    ``shell`` (``jmp shell --exporter-config FILE -- COMMAND``), in an environment without the
    user's exporter, allow-list or client configuration; every process group it started is
    killed when the test ends."""
    from jumpstarter.testing import Commands

    with Commands(tmp_path) as commands:
        yield commands
