from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from jumpstarter_controller.model import Client, Exporter, Lease
from jumpstarter_controller.scheduler import Changes, Event, schedule
from jumpstarter_controller.store import Store, database_url


@pytest.mark.parametrize("given", ["mysql://x/y", "not a url at all"])
def test_database_url_refuses_what_it_cannot_use(given: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--database"):
        database_url(given, tmp_path / "c.db")


def test_state_survives_a_new_store(tmp_path: Path) -> None:
    async def main() -> None:
        url = database_url(None, tmp_path / "controller.db")
        store = await Store.open(url)
        model = await store.load()
        client = Client("lab", "alice", {"team": "a"})
        exporter = Exporter("lab", "board1", "u1", {"board": "rpi4"}, streams=1, status=2)
        lease = Lease("lab", "l1", "alice", "board=rpi4", duration=60, seq=1)
        lease.set_condition("Pending", "True", "Pending", "waiting", 1.0)
        model.clients[client.key] = client
        model.exporters[exporter.key] = exporter
        model.leases[lease.key] = lease
        changes = Changes(clients={client.key})
        changes.event(Event("admin", "client created", "lab", client="alice"))
        schedule(model, changes, 100.0)
        changes.exporter(exporter)
        await store.write(model, changes)
        await store.close()

        again = await Store.open(url)  # migrations run again: nothing to do
        loaded = await again.load()
        assert loaded.clients[client.key] == client
        assert loaded.exporters[exporter.key].lease == "l1"
        assert loaded.exporters[exporter.key].streams == 0  # connections are not state
        assert loaded.leases[lease.key] == lease
        assert [c.type for c in loaded.leases[lease.key].conditions] == ["Pending", "Ready"]
        assert loaded.next_seq == 2
        events = await again.events()
        assert [e["what"] for e in events] == ["client created", "lease acquired"]
        await again.close()

    anyio.run(main)
