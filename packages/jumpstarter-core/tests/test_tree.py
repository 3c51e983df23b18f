"""Driver trees: the report, the client tree, children as attributes, Composite."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from google.protobuf import empty_pb2

from jumpstarter.client import CompositeClient, DriverClient
from jumpstarter.common.utils import serve
from jumpstarter.driver import Composite, Driver, export
from jumpstarter.v1 import jumpstarter_pb2_grpc


@dataclass(kw_only=True)
class Power(Driver):
    @classmethod
    def client(cls) -> str:
        return f"{__name__}.PowerClient"

    @export
    def on(self) -> str:
        return f"{self.labels.get('id')} on"


class PowerClient(DriverClient):
    def on(self) -> str:
        return self.call("on")


@dataclass(kw_only=True)
class Plain(Driver):
    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @export
    def ping(self) -> str:
        return "pong"

    def extra_labels(self) -> dict[str, str]:
        return {"computed": "yes"}


def lab() -> Composite:
    return Composite(
        labels={"site": "lab-1"},
        children={
            "power": Power(labels={"id": "main"}, description="Main power switch", methods_description={"on": "On!"}),
            "dut": Composite(children={"serial": Plain(), "aux": Power(labels={"id": "aux"})}),
            "plain": Plain(labels={"jumpstarter.dev/client": "ignored", "other": "kept"}),
        },
    )


def test_report_is_depth_first_with_reserved_labels() -> None:
    root = lab()
    with serve(root) as client:
        stub = jumpstarter_pb2_grpc.ExporterServiceStub(client.connection.sync_channel)
        report = stub.GetReport(empty_pb2.Empty())
    entries = [(entry.labels.get("jumpstarter.dev/name"), entry) for entry in report.reports]
    assert [name for name, _ in entries] == [None, "power", "dut", "serial", "aux", "plain"]
    by_name = dict(entries)
    assert not by_name[None].HasField("parent_uuid")
    assert by_name[None].labels["jumpstarter.dev/client"] == "jumpstarter_driver_composite.client.CompositeClient"
    assert by_name["serial"].parent_uuid == by_name["dut"].uuid == str(root.children["dut"].uuid)
    assert by_name["power"].labels["jumpstarter.dev/client"] == f"{__name__}.PowerClient"
    assert by_name["power"].description == "Main power switch"
    assert dict(by_name["power"].methods_description) == {"on": "On!"}
    assert not by_name["serial"].HasField("description")
    # The reserved labels override the driver's own; computed labels are merged in.
    assert by_name["plain"].labels["jumpstarter.dev/client"] == "jumpstarter.client.DriverClient"
    assert by_name["plain"].labels["other"] == "kept"
    assert by_name["serial"].labels["computed"] == "yes"
    assert report.uuid and report.uuid not in {entry.uuid for entry in report.reports}
    assert list(report.capabilities) == ["typed-values", "keepalive", "bulk-values"]


def test_client_tree_mirrors_the_driver_tree() -> None:
    with serve(lab()) as client:
        assert isinstance(client, CompositeClient)
        assert list(client.children) == ["power", "dut", "plain"]
        assert isinstance(client.power, PowerClient)
        assert client.power is client.children["power"]
        assert client.power.on() == "main on"
        assert client.dut.aux.on() == "aux on"
        assert client.dut.serial.call("ping") == "pong"
        assert client.power.description == "Main power switch"
        assert client.power.methods_description == {"on": "On!"}
        assert client.dut.name == "dut" and client.name == ""
        assert client.labels["site"] == "lab-1"


def test_a_missing_child_says_which_children_exist() -> None:
    with (
        serve(lab()) as client,
        pytest.raises(AttributeError, match="has no attribute 'powr'; its children are dut, plain, power"),
    ):
        client.powr  # noqa: B018


def test_methods_win_over_children_of_the_same_name() -> None:
    root = Composite(children={"call": Plain()})
    with serve(root) as client:
        assert callable(client.call)
        assert client.children["call"].call("ping") == "pong"


def test_an_aliased_driver_appears_twice() -> None:
    # An alias (a config `ref`) is the same driver object under a second name.
    shared = Power(labels={"id": "shared"})
    root = Composite(children={"a": shared, "b": Composite(children={"alias": shared})})
    with serve(root) as client:
        assert client.a.on() == "shared on"
        assert client.b.alias.on() == "shared on"
        assert client.a.uuid == client.b.alias.uuid


def test_two_drivers_with_one_uuid_are_refused() -> None:
    first = Plain()
    with (
        pytest.raises(ValueError, match="share the uuid"),
        serve(Composite(children={"a": first, "b": Plain(uuid=first.uuid)})),
    ):
        pass


def test_a_single_driver_is_the_root() -> None:
    with serve(Plain()) as client:
        assert type(client) is DriverClient
        assert client.children == {}
        assert client.call("ping") == "pong"
