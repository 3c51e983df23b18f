"""The original jumpstarter 0.9.0's router-stream code against our router (`jmp router run`).

The original's `connect_router_stream` (what its client does after Dial, and its exporter after
Listen) connects with the token we minted, trusting our controller's CA given as its configs'
base64 `tls.ca`; our end, in this process, sends data and reads it back through its echo.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import grpc
import pytest

from conftest import Upstream
from jumpstarter.testing import Commands
from jumpstarter_controller.router import mint_stream_token
from jumpstarter_controller.state import StateDir
from testsupport.router import router_end, start_router

pytestmark = pytest.mark.interop

SUPPORT = Path(__file__).resolve().parents[1] / "support"


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    made = StateDir(tmp_path / "state")
    made.ca(), made.signing_key()
    return made


@pytest.fixture
def router(tmp_path: Path, state: StateDir) -> Iterator[str]:
    with Commands(tmp_path, PYTHONPATH=str(SUPPORT)) as commands:
        process, address = start_router(commands, "--controller-state", state.path, "--listen", "127.0.0.1:0")
        yield address
        process.kill()


@pytest.mark.anyio
@pytest.mark.parametrize("original_first", [True, False], ids=["original-waits", "ours-waits"])
async def test_the_originals_router_stream_relays_through_ours(
    upstream: Upstream, router: str, state: StateDir, original_first: bool
) -> None:
    token = mint_stream_token(state.signing_key(), stream_id=str(uuid.uuid4()), lease="lease-1")
    size = 3 * 1024 * 1024 + 17
    request = {"endpoint": router, "token": token, "ca": base64.b64encode(state.ca_path.read_bytes()).decode()}
    request["send"] = size  # type: ignore[assignment]
    data = os.urandom(2 * 1024 * 1024 + 5)
    answer: dict[str, object] = {}

    async def original() -> None:
        answer.update(await anyio.to_thread.run_sync(upstream.run, "peer_router.py", request))

    async with anyio.create_task_group() as tasks:
        if original_first:
            tasks.start_soon(original)
            await anyio.sleep(0.5)  # not a synchronisation: either order must work, this tries the other one
        async with router_end(router, state.ca_path.read_bytes(), token) as ours:
            if not original_first:
                tasks.start_soon(original)
            with anyio.fail_after(60):
                received = await ours.receive_all()  # up to the original's GOAWAY
                await ours.send(data)
                await ours.close_sending()
                status = await ours.status()
    assert "error" not in answer, answer
    assert (len(received), hashlib.sha256(received).hexdigest()) == (size, answer["sent"])
    assert (answer["received_bytes"], answer["received"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert status == (grpc.StatusCode.OK, "")
