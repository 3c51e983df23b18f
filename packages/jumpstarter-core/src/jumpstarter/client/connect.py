"""Connecting a client to an exporter session."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, ExitStack, asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, TypeAlias

import grpc
from google.protobuf import empty_pb2

from jumpstarter.client._stubs import EXPORTER_SERVICE, stub
from jumpstarter.client.base import DriverClient
from jumpstarter.client.classes import ClientClassPolicy
from jumpstarter.client.connection import Connection
from jumpstarter.client.endpoint import ExporterEndpoint
from jumpstarter.client.text import printable
from jumpstarter.client.tree import build_client_tree
from jumpstarter.common.calls import cancellable
from jumpstarter.common.exceptions import DriverConnectionError, DriverError, ExporterConnectionLost, ExporterNotReady
from jumpstarter.common.wire import keepalive_supported
from jumpstarter.v1 import jumpstarter_pb2

if TYPE_CHECKING:  # imported where used: a client connected from blocking code may need no event loop
    from anyio.from_thread import BlockingPortal

ANSWER_TIMEOUT_SECONDS = 30.0
"""How long a client waits for the exporter to answer: to send its report when connecting
(its session starts first: its drivers are reset), to open a byte stream or the log stream."""


@asynccontextmanager
async def connect_endpoint_async(
    endpoint: ExporterEndpoint,
    *,
    portal: BlockingPortal,
    stack: ExitStack,
    policy: ClientClassPolicy,
    attach: bool = False,
    answer_timeout: float = ANSWER_TIMEOUT_SECONDS,
) -> AsyncIterator[DriverClient]:
    """Connect to the exporter session at `endpoint`; yield the root client.

    Runs on the event loop of `portal`, where the client's async API will run too. With
    `attach`, the client holds the exporter's log stream open while connected: an exporter
    keeps a session, and its drivers' state, while a client is attached to it, and the
    drivers' log records are re-logged here (loggers ``jumpstarter.remote.*``).

    An exporter that does not answer within `answer_timeout` seconds fails with ExporterConnectionLost;
    one that stops answering later is noticed by keepalive pings (within seconds with ours).
    """
    channel = endpoint.aio_channel()
    try:
        exporter = stub(channel, EXPORTER_SERVICE)
        try:
            report = await cancellable(exporter.GetReport(empty_pb2.Empty(), timeout=answer_timeout))
        except grpc.RpcError as error:
            raise _connection_error(endpoint, error, answer_timeout) from None
        pinging = _with_keepalive(endpoint, report)
        if pinging is not None:
            endpoint = pinging
            await channel.close()
            channel = endpoint.aio_channel()
        sync_channel = endpoint.sync_channel()
    except BaseException:
        await channel.close()
        raise
    connection = Connection(
        endpoint=endpoint,
        sync_channel=sync_channel,
        report=report,
        answer_timeout=answer_timeout,
        portal=portal,
        channel=channel,
    )
    try:
        root = build_client_tree(connection, stack, policy)
        if attach:
            async with root.log_stream_async():
                yield root
        else:
            yield root
    finally:
        await connection.aclose()


@contextmanager
def connect_endpoint(
    endpoint: ExporterEndpoint,
    *,
    policy: ClientClassPolicy,
    attach: bool = False,
    answer_timeout: float = ANSWER_TIMEOUT_SECONDS,
) -> Iterator[DriverClient]:
    """`connect_endpoint_async` from blocking code: the same client, with no event loop until it needs one.

    The report comes over the blocking channel; the client's event loop (for byte streams,
    resources, the log stream, its async API) starts on first use, in a thread of its own.
    Streams opened with `open_stream()` are closed on exit, then the log stream, then the
    connection.
    """
    sync_channel = endpoint.sync_channel()
    try:
        exporter = stub(sync_channel, EXPORTER_SERVICE)
        try:
            report = exporter.GetReport(empty_pb2.Empty(), timeout=answer_timeout)
        except grpc.RpcError as error:
            raise _connection_error(endpoint, error, answer_timeout) from None
        pinging = _with_keepalive(endpoint, report)
        if pinging is not None:
            endpoint = pinging
            sync_channel.close()
            sync_channel = endpoint.sync_channel()
    except BaseException:
        sync_channel.close()
        raise
    connection = Connection(endpoint=endpoint, sync_channel=sync_channel, report=report, answer_timeout=answer_timeout)
    with ExitStack() as closing:
        closing.callback(connection.close)
        streams = ExitStack()
        root = build_client_tree(connection, streams, policy)
        if attach:
            closing.enter_context(root.log_stream())
        closing.callback(streams.close)
        yield root


def _with_keepalive(endpoint: ExporterEndpoint, report: jumpstarter_pb2.GetReportResponse) -> ExporterEndpoint | None:
    """`endpoint` with frequent keepalive pings, if its report says the exporter welcomes them (ours
    do) and that was not known before; None otherwise: the connection made for the report stays."""
    if endpoint.keepalive is None and keepalive_supported(report.capabilities):
        return dataclasses.replace(endpoint, keepalive=True)
    return None


OpenClient: TypeAlias = "Callable[[BlockingPortal, ExitStack], AbstractAsyncContextManager[DriverClient]]"


@contextmanager
def blocking_client(open_client: OpenClient) -> Iterator[DriverClient]:
    """Run `open_client` on an event loop in a background thread; yield its client here.

    Streams opened with `open_stream()` are closed from this thread on exit, before the
    loop stops.
    """
    from jumpstarter.common.loops import blocking_loop

    with (
        blocking_loop() as portal,
        ExitStack() as stack,
        portal.wrap_async_context_manager(open_client(portal, stack)) as client,
    ):
        try:
            yield client
        finally:
            stack.close()


@asynccontextmanager
async def async_client(open_client: OpenClient) -> AsyncIterator[DriverClient]:
    """Run `open_client` on the current event loop; yield its client."""
    import anyio.to_thread
    from anyio.from_thread import BlockingPortal

    async with BlockingPortal() as portal:
        stack = ExitStack()
        try:
            async with open_client(portal, stack) as client:
                yield client
        finally:
            await anyio.to_thread.run_sync(stack.close)


def _connection_error(endpoint: ExporterEndpoint, error: grpc.RpcError, answer_timeout: float) -> DriverError:
    """What went wrong reaching `endpoint`, and how to fix it, from gRPC's status and its details."""
    code, details = error.code(), printable(error.details() or "")
    where = f"the exporter at {endpoint.address}"
    if code == grpc.StatusCode.FAILED_PRECONDITION:  # reached, but between leases: it says why
        return ExporterNotReady(f"{where}: {details}")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return DriverConnectionError(f"{where} refused the credentials: {details}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ExporterConnectionLost(
            f"{where} did not answer within {answer_timeout:g} s: it may be busy starting "
            "drivers that hang (its log says which)"
        )
    tls_problem = _tls_problem(endpoint, details)
    if tls_problem is not None:
        return DriverConnectionError(f"{where} {tls_problem}")
    if "Connection refused" in details:
        return ExporterConnectionLost(f"cannot reach {where}: nothing listens there (connection refused)")
    return ExporterConnectionLost(f"cannot reach {where}: {details}")


# What gRPC says (in a status's details) when TLS fails, for each mistake.
_UNTRUSTED = "CERTIFICATE_VERIFY_FAILED"
_NOT_TLS = "WRONG_VERSION_NUMBER"
_WRONG_NAME = "Hostname Verification Check failed"
_CLOSED = "Socket closed"

_TRUST_HINT = "the exporter's certificate (the tls.crt that `jmp exporter run` printed)"


def _tls_problem(endpoint: ExporterEndpoint, details: str) -> str | None:
    """The TLS mistake behind a failed connection, as the end of a sentence about the exporter; None if none."""
    if _UNTRUSTED in details:
        reason = details.rsplit(_UNTRUSTED + ":", 1)[-1].split(":")[0].strip()
        reason = f" ({reason})" if reason and reason != "OK" else ""
        if endpoint.tls_ca is None:
            return (
                f"presented a TLS certificate that is not trusted here{reason}: give {_TRUST_HINT} "
                "with --tls-ca FILE (or JMP_TLS_CA)"
            )
        return (
            "presented a TLS certificate that the certificates given to trust (--tls-ca) did not sign: give "
            f"{_TRUST_HINT}, which it makes anew when its names or addresses change"
        )
    if _NOT_TLS in details:
        return "does not use TLS (it runs with --insecure-no-auth): connect with --insecure"
    if _WRONG_NAME in details:
        name = endpoint.tls_server_name or endpoint.address.rpartition(":")[0].strip("[]")
        problem = f"presented a TLS certificate that is not valid for the name {name!r}"
        names = _trusted_names(endpoint.tls_ca)
        if names:
            problem += f" (the certificate given to trust is valid for {', '.join(names)})"
        return f"{problem}: connect with a name it is valid for, or give one with --tls-server-name NAME"
    if _CLOSED in details and endpoint.insecure:
        return (
            "closed the connection without TLS (--insecure): it most likely uses TLS; drop --insecure and give "
            f"{_TRUST_HINT} with --tls-ca FILE"
        )
    return None


def _trusted_names(tls_ca: bytes | None) -> list[str]:
    """The names the first certificate to trust is valid for: an exporter's own, when it is self-signed."""
    if tls_ca is None:
        return []
    from jumpstarter.common.tls import check_pem_certificates

    try:
        return check_pem_certificates(tls_ca, "tls_ca")
    except ValueError:
        return []


def _opener(
    endpoint: ExporterEndpoint, allow: Iterable[str], unsafe: bool, attach: bool, answer_timeout: float
) -> OpenClient:
    policy = ClientClassPolicy.default(allow, unsafe)
    return lambda portal, stack: connect_endpoint_async(
        endpoint, portal=portal, stack=stack, policy=policy, attach=attach, answer_timeout=answer_timeout
    )


def _endpoint(
    address: str | ExporterEndpoint, tls_ca: bytes | None, token: str | None, insecure: bool
) -> ExporterEndpoint:
    if isinstance(address, ExporterEndpoint):
        return address
    return ExporterEndpoint(address=str(address), tls_ca=tls_ca, token=token, insecure=insecure)


@contextmanager
def connect(
    address: str | ExporterEndpoint,
    *,
    tls_ca: bytes | None = None,
    token: str | None = None,
    insecure: bool = False,
    allow: Iterable[str] = (),
    unsafe: bool = False,
    attach: bool = True,
    answer_timeout: float = ANSWER_TIMEOUT_SECONDS,
) -> Iterator[DriverClient]:
    """Connect to the exporter session at `address`; yield the root client.

    `address` is a Unix socket path, or ``host:port`` of a TCP listener, reached with TLS
    (trusting `tls_ca`, PEM, or the system's certificates) and `token`, or in plaintext with
    ``insecure=True`` (for exporters started with --insecure-no-auth).

    The exporter names a client class for each driver; this process imports only those
    its allow-list admits (see `ClientClassPolicy.default`: the installed driver packages,
    the client configuration and ``JMP_DRIVERS_ALLOW``), plus the glob patterns in `allow`
    (e.g. ``"mycompany_drivers.*"``). Drivers whose client class is not admitted become
    stubs that explain how to admit them. ``unsafe=True`` admits any class.

    With `attach` (the default), the exporter keeps this client's session, and so the state
    of its drivers, until the client disconnects, and the drivers' log records are re-logged
    in this process (loggers ``jumpstarter.remote.*``). Without it, an exporter may end the
    session, closing its drivers, once no call has run for a couple of seconds.

    An exporter that does not answer within `answer_timeout` seconds (its drivers hang as they
    start, say), or stops answering while connected, raises ExporterConnectionLost.
    """
    endpoint = _endpoint(address, tls_ca, token, insecure)
    policy = ClientClassPolicy.default(allow, unsafe)
    with connect_endpoint(endpoint, policy=policy, attach=attach, answer_timeout=answer_timeout) as client:
        yield client


@asynccontextmanager
async def connect_async(
    address: str | ExporterEndpoint,
    *,
    tls_ca: bytes | None = None,
    token: str | None = None,
    insecure: bool = False,
    allow: Iterable[str] = (),
    unsafe: bool = False,
    attach: bool = True,
    answer_timeout: float = ANSWER_TIMEOUT_SECONDS,
) -> AsyncIterator[DriverClient]:
    """Async twin of `connect`, on the current event loop."""
    endpoint = _endpoint(address, tls_ca, token, insecure)
    async with async_client(_opener(endpoint, allow, unsafe, attach, answer_timeout)) as client:
        yield client
