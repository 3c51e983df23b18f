"""The pytest plugin of jumpstarter (entry point ``pytest11``): the `jumpstarter_client` fixture.

Run the tests inside a shell of the exporter:

    $ jmp shell --exporter-config exporter.yaml -- pytest

and ask for the client of its driver tree:

    def test_boot(jumpstarter_client):
        jumpstarter_client.power.on()

The fixture connects once per test session. Without ``jmp shell`` the tests that use it
fail at setup with one line saying how to run them; the others run as usual.

pytest loads this module in every run of anyone who installed jumpstarter-core: it imports
nothing but pytest until a test asks for the fixture. Disable it with
``-p no:jumpstarter``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from jumpstarter.client import DriverClient

_NOT_IN_SHELL = "run pytest inside jmp shell: jmp shell --exporter-config FILE -- pytest"


@pytest.fixture(scope="session")
def jumpstarter_client() -> Iterator[DriverClient]:
    """The root client of the exporter of the enclosing ``jmp shell`` (see `jumpstarter.client.environment`)."""
    if not os.environ.get("JUMPSTARTER_HOST"):
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
