"""How `jmp update lease` extends a lease that a live client of this user on this machine holds.

A client holds the lease it created in short steps (`jumpstarter.client.leasing`), so that a
client killed with SIGKILL leaves its exporter free soon. Extending such a lease at the
controller (UpdateLease with the whole new duration) would move its end there at once and lose
that guard. So the holder serves a small control socket, one per lease, in a directory only
this user can enter; `jmp update lease NAME --duration D` asks the holder of NAME there first,
and the holder keeps stepping, now up to D. A lease nobody holds here is extended at the
controller as before.

The protocol is one JSON line each way: ``{"duration": SECONDS}``, answered by
``{"lease": NAME}`` or ``{"error": MESSAGE}``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import anyio
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from jumpstarter.common.unix_sockets import connect_unix, create_unix_listener

__all__ = ["ask_holder", "hold_control"]

logger = logging.getLogger(__name__)

_LINE_LIMIT = 4096
_ANSWER_SECONDS = 30.0
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")

Extend = Callable[[float], Awaitable[None]]
"""What the holder does when asked: extend its hold up to a new whole duration; LabError if refused."""


def _directory() -> Path | None:
    """This user's directory of control sockets (0700, owned by this user), or None where there cannot be one."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime and os.path.isdir(runtime) else Path(tempfile.gettempdir())
    top = base / f"jumpstarter-{os.getuid()}" if base == Path(tempfile.gettempdir()) else base / "jumpstarter"
    directory = top / "leases"
    try:
        for part in (top, directory):
            part.mkdir(exist_ok=True, mode=0o700)
            info = part.lstat()
            # Another user's directory in a shared /tmp must not receive our requests or our sockets.
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                return None
            if info.st_mode & 0o077:
                part.chmod(0o700)
    except OSError:
        return None
    return directory


def _socket_path(lease: str) -> Path | None:
    name = lease.rsplit("/", 1)[-1]
    directory = _directory()
    if directory is None or not _SAFE_NAME.match(name):
        return None
    return directory / f"{name}.sock"


@asynccontextmanager
async def hold_control(lease: str, extend: Extend) -> AsyncIterator[None]:
    """Serve the control socket of `lease` while inside (nothing, with a debug line, where there cannot be one)."""
    path = _socket_path(lease)
    if path is None:
        logger.debug("no control socket for lease %s: jmp update lease will extend it at the controller", lease)
        yield
        return
    with suppress(FileNotFoundError):
        path.unlink()  # a holder killed with SIGKILL left it behind
    listener = await create_unix_listener(path)
    try:
        async with listener, anyio.create_task_group() as tasks:
            tasks.start_soon(listener.serve, lambda stream: _answer(stream, extend))
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
    finally:
        with suppress(OSError):
            path.unlink()


async def _answer(stream: SocketStream, extend: Extend) -> None:
    from jumpstarter.common.exceptions import JumpstarterException

    async with stream:
        try:
            with anyio.fail_after(_ANSWER_SECONDS):
                request = json.loads(await BufferedByteReceiveStream(stream).receive_until(b"\n", _LINE_LIMIT))
                duration = float(request["duration"])
                await extend(duration)
            answer: dict[str, object] = {"ok": True}
        except JumpstarterException as error:
            answer = {"error": str(error)}
        except (ValueError, KeyError, TypeError, anyio.IncompleteRead, anyio.DelimiterNotFound, TimeoutError):
            answer = {"error": "a request to the lease's holder is one JSON line with a duration"}
        except Exception as error:  # the holder keeps holding whatever one request does
            logger.warning("cannot extend the lease as asked: %s", error)
            answer = {"error": f"the lease's holder could not extend it: {error}"}
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await stream.send(json.dumps(answer).encode() + b"\n")


async def ask_holder(lease: str, duration: float) -> str | None:
    """Ask the holder of `lease` on this machine to extend it to `duration` seconds in all.

    None: no holder here (extend at the controller instead); "": extended; otherwise the
    holder's one-line refusal.
    """
    path = _socket_path(lease)
    if path is None or not path.is_socket():
        return None
    try:
        stream = await connect_unix(path)
    except OSError:  # the holder has gone (killed with SIGKILL): its socket is stale
        return None
    async with stream:
        try:
            with anyio.fail_after(_ANSWER_SECONDS):
                await stream.send(json.dumps({"duration": duration}).encode() + b"\n")
                answer = json.loads(await BufferedByteReceiveStream(stream).receive_until(b"\n", _LINE_LIMIT))
        except (TimeoutError, OSError, ValueError, anyio.IncompleteRead, anyio.DelimiterNotFound,
                anyio.BrokenResourceError, anyio.EndOfStream):  # fmt: skip
            return f"the holder of lease {lease} on this machine did not answer (its socket is {path})"
    if not isinstance(answer, dict):
        return f"the holder of lease {lease} on this machine gave an answer that is not one"
    return "" if answer.get("ok") else str(answer.get("error", "the lease's holder refused"))
