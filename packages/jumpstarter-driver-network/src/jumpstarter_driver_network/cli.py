"""The commands of `NetworkClient.cli()`: ``j <name> address | forward-tcp | forward-unix | forward-udp``.

A forward prints the address it listens on first, alone on its line on stdout, so that a
script can read it, then runs until interrupted: Ctrl-C or SIGTERM stop it cleanly,
removing what it created, with exit status 0. Code that runs a command in another thread
stops it by passing a `threading.Event` as the click context's ``obj`` and setting it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from jumpstarter.client import DriverError, DriverMethodNotImplemented
from jumpstarter_driver_network.addresses import join_host_port, split_address

if TYPE_CHECKING:
    from jumpstarter_driver_network.client import NetworkClient

T = TypeVar("T")


def add_commands(group: click.Group, client: NetworkClient) -> None:
    """Add the network commands to `group`, the client's click group."""

    @group.command()
    @click.option("--host", "host_only", is_flag=True, help="Print only the host (or a Unix socket's path).")
    @click.option("--port", "port_only", is_flag=True, help="Print only the port.")
    def address(host_only: bool, port_only: bool) -> None:
        """Print the target's address as the exporter reaches it: host:port, or a socket's path."""
        try:
            text = client.address()
        except DriverMethodNotImplemented:
            raise click.ClickException("this driver has no address: it is not a TCP, UDP or Unix socket") from None
        except DriverError as error:  # enable_address is false, say
            raise click.ClickException(str(error)) from None
        scheme, host, port = split_address(text)
        if host_only and not port_only:
            click.echo(host)
        elif port_only and not host_only:
            if port is None:
                raise click.ClickException(f"the address {text} has no port")
            click.echo(port)
        elif scheme in ("tcp", "udp", "unix"):
            click.echo(join_host_port(host, port) if scheme != "unix" else host)
        else:
            click.echo(text)

    @group.command("forward-tcp")
    @click.argument("port", type=click.IntRange(0, 65535), default=0, required=False)
    @click.option("--address", "host", default="127.0.0.1", show_default=True, help="Local address to listen on.")
    def forward_tcp(port: int, host: str) -> None:
        """Forward a local TCP port to the target: each connection opens a new one to it.

        PORT is the local port to listen on; 0 (the default) picks a free one. Prints the
        address it listens on, then forwards until Ctrl-C or SIGTERM.
        """
        where = "TCP " + join_host_port(host, port)
        with _listening(lambda: client.forward_tcp(port, host), where) as bound:
            _serve_until_stopped(join_host_port(*bound))

    @group.command("forward-unix")
    @click.argument("path", type=click.Path(dir_okay=False), required=False)
    def forward_unix(path: str | None) -> None:
        """Forward a local Unix socket to the target: each connection opens a new one to it.

        PATH is the socket to create; by default one in a new private directory. Prints its
        path, then forwards until Ctrl-C or SIGTERM, and removes the socket on exit.
        """
        where = f"Unix socket {path or '(temporary)'}"
        with _listening(lambda: client.forward_unix(path), where) as bound:
            _serve_until_stopped(bound)

    @group.command("forward-udp")
    @click.argument("port", type=click.IntRange(0, 65535), default=0, required=False)
    @click.option("--address", "host", default="127.0.0.1", show_default=True, help="Local address to listen on.")
    @click.option(
        "--idle-timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=60.0,
        show_default=True,
        help="Seconds after which the stream of a quiet local peer is closed.",
    )
    def forward_udp(port: int, host: str, idle_timeout: float) -> None:
        """Forward a local UDP port to a UdpNetwork's target, datagram by datagram.

        PORT is the local port to listen on; 0 (the default) picks a free one. Answers go
        back to the local program that sent the request.
        """
        _check_datagrams(client)
        where = "UDP " + join_host_port(host, port)
        with _listening(lambda: client.forward_udp(port, host, idle_timeout=idle_timeout), where) as bound:
            _serve_until_stopped(join_host_port(*bound))


def _check_datagrams(client: NetworkClient) -> None:
    """Refuse, before listening, to forward UDP through a driver whose target is not a UDP port.

    Its address tells (``udp://`` for UdpNetwork, ours and the original's alike); a driver
    without one (EchoNetwork, the original's UnixNetwork) is a byte stream. A driver that
    hides its address (``enable_address: false``) gets the benefit of the doubt.
    """
    name = client.name or "root"
    try:
        address = client.address()
    except DriverMethodNotImplemented:
        raise click.ClickException(
            f"driver {name!r} is a byte stream, not a UDP port: forward-udp needs a UdpNetwork driver; "
            f"forward its stream with forward-tcp or forward-unix"
        ) from None
    except DriverError:
        return
    scheme = split_address(address)[0]
    if scheme != "udp":
        raise click.ClickException(
            f"driver {name!r} reaches {address}, not a UDP port: forward-udp needs a UdpNetwork driver; "
            f"use forward-tcp or forward-unix"
        )


@contextmanager
def _listening(open_forward: Callable[[], AbstractContextManager[T]], where: str) -> Iterator[T]:
    """Enter a forward; a local address that cannot be listened on is a usage error, not a traceback."""
    with ExitStack() as stack:
        try:
            bound = stack.enter_context(open_forward())
        except OSError as error:
            raise click.ClickException(f"cannot listen on {where}: {error.strerror or error}") from None
        yield bound


class _Terminated(Exception):
    pass


def _terminate(signum: int, frame: Any) -> None:
    raise _Terminated


def _serve_until_stopped(address: str) -> None:
    """Print `address`, then wait for Ctrl-C, SIGTERM or the context's stop event."""
    stop = click.get_current_context().find_object(threading.Event) or threading.Event()
    in_main_thread = threading.current_thread() is threading.main_thread()
    # SIGTERM (what `kill` and service managers send) stops the forward like Ctrl-C does,
    # from the moment a script can know the address.
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        click.echo(address)
        click.echo("forwarding; press Ctrl-C to stop", err=True)
        stop.wait()
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
