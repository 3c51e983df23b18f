"""`JumpstarterTest`: the original's base class of pytest test classes that use one exporter.

    from jumpstarter_testing.pytest import JumpstarterTest

    class TestBoard(JumpstarterTest):
        selector = "board=rpi4"

        def test_power(self, client):
            client.power.on()

The class-scoped ``client`` fixture is the exporter of the enclosing ``jmp shell`` when there
is one (``JUMPSTARTER_HOST``), else an exporter matching `selector` leased with the client
configuration that `jmp` would use (``--client``'s rules: ``JMP_CLIENT_CONFIG``, ``JMP_CLIENT``,
the default client), released when the class's tests are done. New code can use the plugin's
``jumpstarter_client`` fixture and ``--jumpstarter-selector`` instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

import pytest

if TYPE_CHECKING:
    from jumpstarter.client import DriverClient

__all__ = ["JumpstarterTest"]


class JumpstarterTest:
    """Base class of test classes whose tests share one exporter: the ``client`` fixture."""

    selector: ClassVar[str]

    @pytest.fixture(scope="class")
    @classmethod
    def client(cls) -> Iterator[DriverClient]:
        from jumpstarter.client import LabError, env, lease
        from jumpstarter.config.env import JUMPSTARTER_HOST
        from jumpstarter.config.yaml import ConfigError

        if os.environ.get(JUMPSTARTER_HOST):
            with env() as client:
                yield client
            return
        selector = getattr(cls, "selector", None)
        if not selector:
            pytest.fail(
                f"{cls.__name__}: run inside jmp shell, or set the class's selector (selector = 'board=rpi4') "
                "to lease an exporter",
                pytrace=False,
            )
        try:
            with lease(selector) as client:
                yield client
        except (LabError, ConfigError, TimeoutError) as error:
            pytest.fail(f"{cls.__name__}: no lease for {selector}: {error or 'not granted in time'}", pytrace=False)
