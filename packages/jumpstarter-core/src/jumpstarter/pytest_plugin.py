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

The fixture connects once per test session. Outside ``jmp shell``, it leases an exporter
from a lab controller for the session when given a selector, released when the session ends:

    $ pytest --jumpstarter-selector board=rpi4             # the default client configuration
    $ JMP_CLIENT=ci pytest --jumpstarter-selector board=rpi4

or ``jumpstarter_selector = board=rpi4`` (and ``jumpstarter_duration = 1h``) in the ini
file. Without either, the tests that use it fail at setup with one line saying how to run
them; the others run as usual.

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

_NOT_IN_SHELL = (
    "run pytest inside jmp shell (jmp shell --exporter-config FILE -- pytest), or lease an exporter from a lab "
    "for the session: pytest --jumpstarter-selector KEY=VALUE"
)
_SELECTOR_HELP = "Lease an exporter with these labels from the lab controller for the session (outside jmp shell)."
_DURATION_HELP = "How long that lease may last (30m, 2h, ...; default 30m)."


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("jumpstarter")
    group.addoption("--jumpstarter-selector", metavar="KEY=VALUE", help=_SELECTOR_HELP)
    group.addoption("--jumpstarter-duration", metavar="DURATION", help=_DURATION_HELP)
    parser.addini("jumpstarter_selector", _SELECTOR_HELP, default="")
    parser.addini("jumpstarter_duration", _DURATION_HELP, default="")


def _leased(config: pytest.Config, stack: ExitStack) -> DriverClient | None:
    """The root client of an exporter leased for the session, if a selector is given; None otherwise."""
    selector = config.getoption("jumpstarter_selector") or config.getini("jumpstarter_selector")
    if not selector:
        return None
    from jumpstarter.client import LabError, lease
    from jumpstarter.config.durations import parse_duration
    from jumpstarter.config.yaml import ConfigError

    duration_text = config.getoption("jumpstarter_duration") or config.getini("jumpstarter_duration") or "30m"
    try:
        duration = parse_duration(str(duration_text))
        client: DriverClient = stack.enter_context(lease(str(selector), duration=duration))
    except (LabError, ConfigError, ValueError, TimeoutError) as error:
        pytest.fail(f"jumpstarter_client: no lease for {selector}: {error or 'not granted in time'}", pytrace=False)
    return client


@pytest.fixture(scope="session")
def jumpstarter_client(pytestconfig: pytest.Config) -> Iterator[DriverClient]:
    """The root client of the exporter of the enclosing ``jmp shell`` (see `jumpstarter.client.environment`),
    or of one leased for the session with ``--jumpstarter-selector``."""
    from jumpstarter.config.env import JUMPSTARTER_HOST

    if not os.environ.get(JUMPSTARTER_HOST):
        with ExitStack() as stack:
            leased = _leased(pytestconfig, stack)
            if leased is None:
                pytest.fail(_NOT_IN_SHELL, pytrace=False)
            yield leased
        return

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
