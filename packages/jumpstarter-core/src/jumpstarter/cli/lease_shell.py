"""`jmp shell --selector ...` / `--lease NAME`: the exporter is leased from a lab controller.

The lease (`jumpstarter.client.leasing.LeaseSession`) is held on an event loop in a background
thread for the shell's life: created (or taken, with ``--lease``), waited for (the exporter's
beforeLease hook included: the command starts once the exporter is LEASE_READY), kept alive,
and released when the shell ends, whatever ends it (exit, Ctrl-C, SIGTERM). A signal that
comes while waiting for the exporter stops the wait, and the lease is released.

Before the lease's end the shell warns on stderr; at the end the command is hung up (SIGHUP,
as when its terminal goes away) and `jmp shell` exits with EXIT_LEASE_ENDED.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jumpstarter.cli import output
from jumpstarter.cli.shell import (
    _CREDENTIAL_VARIABLES,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    PROGRAM,
    _Exporter,
    _ShellError,
)
from jumpstarter.config.durations import format_duration
from jumpstarter.config.env import JMP_DRIVERS_ALLOW, JMP_HOST_KEEPALIVE, JUMPSTARTER_HOST

if TYPE_CHECKING:
    import anyio
    from anyio.abc import TaskStatus
    from anyio.from_thread import BlockingPortal

    from jumpstarter.client.leasing import LeaseSession
    from jumpstarter.client.v1 import client_pb2
    from jumpstarter.config.client import ClientConfig

# `jmp shell`'s exit codes of a leased exporter (the others are in jumpstarter.cli.shell).
EXIT_LEASE_ENDED = 4
"""The lease ended (its time was up, or it was released or ended elsewhere): the command was hung up."""
EXIT_NO_LEASE = 5
"""No lease: refused, unsatisfiable, or not granted within the acquisition timeout."""
EXIT_HOOK_FAILED = 6
"""The exporter's beforeLease hook failed: the exporter cannot serve the lease (it was released)."""


@dataclass
class LeasedExporter(_Exporter):
    config: ClientConfig
    selector: str
    duration: float
    lease_name: str | None
    exporter_name: str
    acquisition_timeout: float | None
    session: LeaseSession | None = None
    end_reason: str | None = None
    _portal: BlockingPortal | None = field(default=None, repr=False)
    _future: Future[Any] | None = field(default=None, repr=False)
    _done: anyio.Event | None = field(default=None, repr=False)
    _scope: anyio.CancelScope | None = field(default=None, repr=False)
    _stop_signal: int | None = None
    _keepalive: bool = False

    stopping = "releasing the lease"

    def start(self, stack: ExitStack) -> None:
        from jumpstarter.client.connect import connect
        from jumpstarter.client.endpoint import ExporterEndpoint
        from jumpstarter.client.lab import LabError
        from jumpstarter.client.readiness import HookFailed
        from jumpstarter.common.exceptions import DriverConnectionError, DriverError
        from jumpstarter.common.loops import blocking_loop
        from jumpstarter.common.wire import keepalive_supported

        self._portal = portal = stack.enter_context(blocking_loop())
        try:
            self._future, self.session = portal.start_task(self._hold)
        except HookFailed as error:
            raise _ShellError(EXIT_HOOK_FAILED, str(error)) from None
        except LabError as error:
            raise _ShellError(EXIT_UNREACHABLE if error.unreachable else EXIT_NO_LEASE, str(error)) from None
        except TimeoutError:
            raise _ShellError(
                EXIT_NO_LEASE, "no exporter was granted within the acquisition timeout (the lease was released)"
            ) from None
        except BaseException:
            if self._stop_signal is not None:
                raise _ShellError(128 + self._stop_signal, "stopped before an exporter was granted") from None
            raise
        stack.callback(self._release)
        assert self.session is not None
        try:  # attached: the exporter keeps the session while the shell lives, and its logs show here
            root = stack.enter_context(connect(ExporterEndpoint(self.session.socket), attach=True))
            # Each connection through the tunnel is a Dial and a router stream: `j` saves one when told.
            self._keepalive = keepalive_supported(root.connection.report.capabilities)
        except DriverConnectionError as error:
            raise _ShellError(EXIT_UNREACHABLE, str(error)) from None
        except DriverError as error:
            output.say(PROGRAM, f"warning: the exporter's logs cannot be shown: {error}")

    async def _hold(self, *, task_status: TaskStatus[LeaseSession]) -> None:
        import anyio

        from jumpstarter.client.leasing import LeaseSession

        self._done = anyio.Event()
        with anyio.CancelScope() as self._scope:
            if self._stop_signal is not None:
                self._scope.cancel()
            async with LeaseSession.open(
                self.config,
                selector=self.selector,
                duration=self.duration,
                name=self.lease_name,
                exporter_name=self.exporter_name,
                acquisition_timeout=self.acquisition_timeout,
                on_waiting=self._waiting,
                on_warning=self._warning,
                on_end=self._ended,
            ) as session:
                task_status.started(session)
                await self._done.wait()

    def interrupt(self, signum: int) -> None:
        """A signal came before the command started: stop waiting for the exporter."""
        self._stop_signal = signum
        portal = self._portal
        if portal is not None and self.session is None:
            portal.start_task_soon(self._cancel)

    async def _cancel(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    def _release(self) -> None:
        if self._portal is not None and self._done is not None:
            self._portal.call(self._done.set)
        if self._future is not None:
            self._future.result()

    # -- told by the lease (on its event loop) ------------------------------------------------

    def _waiting(self, lease: client_pb2.Lease) -> None:
        why = f": {lease.conditions[-1].message}" if lease.conditions and lease.conditions[-1].message else ""
        name = lease.name.rsplit("/", 1)[-1]
        output.say(PROGRAM, f"waiting for an exporter (lease {name}){why}")

    def _warning(self, left: float) -> None:
        assert self.session is not None
        name = self.session.name
        output.say(
            PROGRAM,
            f"warning: lease {name} ends in {format_duration(max(0, round(left)))}; the command will then be hung up "
            f"(extend it: jmp update lease {name} --duration LONGER)",
        )

    def _ended(self, reason: str) -> None:
        self.end_reason = reason
        os.kill(os.getpid(), signal.SIGHUP)  # as if the terminal went away: the command is hung up

    # -- the shell's side ---------------------------------------------------------------------

    def final_code(self, code: int) -> int:
        if self.end_reason is None:
            return code
        assert self.session is not None
        output.error(PROGRAM, f"lease {self.session.name} ended ({self.end_reason}): the command was hung up")
        return EXIT_LEASE_ENDED

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        assert self.session is not None
        env = {key: value for key, value in base.items() if key not in _CREDENTIAL_VARIABLES}
        env[JUMPSTARTER_HOST] = self.session.socket
        env.pop(JMP_HOST_KEEPALIVE, None)
        if self._keepalive:
            env[JMP_HOST_KEEPALIVE] = self.session.socket
        env["JMP_LEASE"] = self.session.name
        env["JMP_EXPORTER"] = self.session.exporter
        allowed = [item for item in base.get(JMP_DRIVERS_ALLOW, "").split(",") if item.strip()]
        allowed += ["UNSAFE"] if self.config.drivers.unsafe else list(self.config.drivers.allow)
        if allowed:
            env[JMP_DRIVERS_ALLOW] = ",".join(allowed)
        return env

    def banner(self) -> str:
        assert self.session is not None
        ends = self.session.ends_at
        until = time.strftime(" until %H:%M:%S", time.localtime(ends)) if ends else ""
        return (
            f"exporter {self.session.exporter}, lease {self.session.name}{until}; 'j --help' lists its drivers; "
            "exit to release it"
        )

    def label(self) -> str:
        return self.session.exporter if self.session is not None else "lease"


def leased_exporter(
    client: str | None,
    client_config: str | None,
    selector: str,
    duration: float,
    lease_name: str | None,
    exporter_name: str,
    acquisition_timeout: float | None,
) -> LeasedExporter:
    """The leased exporter of `jmp shell`'s lab options; _ShellError for a client configuration unfit for a lab."""
    import click

    from jumpstarter.cli.lab_options import client_config as chosen

    try:
        config = chosen(client, client_config)
    except click.ClickException as error:
        raise _ShellError(EXIT_USAGE, error.format_message()) from None
    return LeasedExporter(config, selector, duration, lease_name, exporter_name, acquisition_timeout)
