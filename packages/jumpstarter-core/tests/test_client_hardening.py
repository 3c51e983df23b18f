"""The client against slow, huge and hostile exporters: deadlines, linear trees, bounded loggers, safe text."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace

import anyio
import pytest
from anyio.from_thread import start_blocking_portal
from click.testing import CliRunner

from jumpstarter.client import connect
from jumpstarter.client.classes import ClientClassPolicy
from jumpstarter.client.connection import _relay
from jumpstarter.client.text import printable
from jumpstarter.client.tree import build_client_tree
from jumpstarter.common.exceptions import DriverInvalidArgument, ExporterConnectionLost
from jumpstarter.driver import Composite, Driver, export, exportstream
from jumpstarter.exporter import Exporter, listen
from jumpstarter.testing import serve
from jumpstarter.v1 import common_pb2, jumpstarter_pb2

ESCAPES = "\x1b]0;owned\x07\x1b[2J\rjmp$ "
SHOWN = "\\x1b]0;owned\\x07\\x1b[2J\\x0djmp$ "


@dataclass(kw_only=True)
class Hostile(Driver):
    """Says things a terminal would obey."""

    started: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    def reset(self) -> None:
        self.started.wait(30)

    @export
    def shout(self) -> None:
        self.logger.warning("%s", ESCAPES)

    @export
    def fail(self) -> None:
        raise ValueError(ESCAPES)

    @exportstream
    @asynccontextmanager
    async def never(self) -> AsyncIterator[None]:
        await anyio.sleep(30)
        yield None


# -- text from the exporter -----------------------------------------------------------------------


def test_printable_shows_control_characters_and_keeps_lines() -> None:
    assert printable(ESCAPES) == SHOWN
    assert printable("two\nlines\tand a tab, ünïcödé") == "two\nlines\tand a tab, ünïcödé"
    assert printable("\x9b31m and \u202eevil") == "\\x9b31m and \\u202eevil"


def test_descriptions_names_errors_and_records_from_an_exporter_are_printable(caplog: pytest.LogCaptureFixture) -> None:
    hostile = Hostile(description=f"The bench {ESCAPES}", methods_description={"shout": ESCAPES})
    hostile.started.set()
    root = Composite(children={f"dut{ESCAPES}": hostile})
    caplog.set_level(logging.WARNING, logger="jumpstarter.remote")
    with serve(root) as client:
        group = client.cli()
        shown = CliRunner().invoke(group, ["--help"]).output
        assert "\x1b" not in shown and "dut\\x1b]0;owned" in shown
        child = client.children[f"dut{ESCAPES}"]
        assert "\x1b" not in CliRunner().invoke(child.cli(), ["--help"]).output
        with pytest.raises(DriverInvalidArgument) as failed:
            child.call("fail")
        assert str(failed.value) == SHOWN
        with client.log_stream():
            child.call("shout")
    relayed = [record.getMessage() for record in caplog.records if record.name.startswith("jumpstarter.remote")]
    assert SHOWN in relayed and ESCAPES not in relayed


def test_records_of_many_driver_classes_make_no_loggers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="jumpstarter.remote")
    loggers = len(logging.Logger.manager.loggerDict)
    for number in range(5000):
        record = jumpstarter_pb2.LogStreamResponse(
            severity="INFO",
            message=f"record {number}",
            source=common_pb2.LOG_SOURCE_DRIVER,
            driver_type=f"Class{number}",
        )
        _relay(record)
    assert len(logging.Logger.manager.loggerDict) - loggers < 10
    names = {record.name for record in caplog.records}
    assert "jumpstarter.remote.driver.Class4999" in names  # still named after the driver's class
    # A logger configured here for a class receives that class's records.
    configured = logging.getLogger("jumpstarter.remote.driver.Relay")
    configured.setLevel(logging.ERROR)
    try:
        _relay(
            jumpstarter_pb2.LogStreamResponse(
                severity="INFO", message="hidden", source=common_pb2.LOG_SOURCE_DRIVER, driver_type="Relay"
            )
        )
    finally:
        configured.setLevel(logging.NOTSET)
    assert "hidden" not in [record.getMessage() for record in caplog.records]


# -- trees ----------------------------------------------------------------------------------------


def _flat_report(children: int) -> jumpstarter_pb2.GetReportResponse:
    report = jumpstarter_pb2.GetReportResponse()
    client = {"jumpstarter.dev/client": "jumpstarter.client.DriverClient"}
    root = report.reports.add(uuid="00000000-0000-0000-0000-000000000000", labels=client)
    for number in range(children):
        report.reports.add(
            uuid=f"00000000-0000-0000-0000-{number + 1:012d}",
            parent_uuid=root.uuid,
            labels={**client, "jumpstarter.dev/name": f"d{number}"},
        )
    return report


def _build_seconds(children: int) -> float:
    connection = SimpleNamespace(report=_flat_report(children))
    policy = ClientClassPolicy.exactly(["jumpstarter.client.DriverClient"])
    # Without the cyclic collector: its passes over all the objects alive grow with the tree (40,000
    # children took 12 to 28 times as long as 5,000 with it, 9 to 10 times without), and it is the
    # building that must be linear.
    gc.disable()
    try:
        began = time.perf_counter()
        with ExitStack() as stack:
            tree = build_client_tree(connection, stack, policy)  # type: ignore[arg-type]
            assert len(tree.children) == children and tree.children["d7"].name == "d7"
            return time.perf_counter() - began
    finally:
        gc.enable()


def test_a_flat_tree_is_built_in_linear_time() -> None:
    # The fastest of a few builds: a busy machine stretches single runs.
    small = min(_build_seconds(5_000) for _ in range(3))
    large = min(_build_seconds(40_000) for _ in range(3))
    # Linear: about 8 times longer for 8 times as many children (quadratic: 64 times).
    assert large < 25 * small, f"{small:.2f} s for 5,000 children, {large:.2f} s for 40,000"


# -- deadlines --------------------------------------------------------------------------------------


@pytest.fixture
def stuck_at_start() -> Iterator[tuple[str, Hostile]]:
    """An exporter whose drivers hang in reset() until released (its session starts with the first call)."""
    hostile = Hostile()
    with start_blocking_portal() as portal:
        serving = listen(Exporter(lambda: hostile, stop_grace=5), private_unix=True)
        with portal.wrap_async_context_manager(serving) as where:
            assert where.unix_path is not None
            try:
                yield where.unix_path, hostile
            finally:
                hostile.started.set()


def test_connecting_to_an_exporter_stuck_starting_gives_up_with_its_address(
    stuck_at_start: tuple[str, Hostile],
) -> None:
    path, hostile = stuck_at_start
    began = time.monotonic()
    expected = f"the exporter at {path} did not answer within 0.5 s"
    with pytest.raises(ExporterConnectionLost, match=expected), connect(path, answer_timeout=0.5):
        pass
    assert time.monotonic() - began < 5
    hostile.started.set()
    with connect(path, unsafe=True) as client:
        client.call("shout")


def test_a_byte_stream_that_never_opens_gives_up() -> None:
    hostile = Hostile()
    hostile.started.set()
    with serve(hostile) as served:
        path = served.connection.address
        with connect(path, answer_timeout=0.5, unsafe=True) as client:
            began = time.monotonic()
            with (
                pytest.raises(ExporterConnectionLost, match=r"did not open never within 0\.5 s"),
                client.stream("never"),
            ):
                pass
            assert time.monotonic() - began < 5
