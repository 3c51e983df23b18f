"""The drivers through `serve()`: a real client, real gRPC, real peers on loopback."""

from __future__ import annotations

import logging
import socket

import anyio
import pytest
from anyio import BrokenResourceError, EndOfStream
from jumpstarter_driver_network.client import NetworkClient
from jumpstarter_driver_network.driver import EchoNetwork, TcpNetwork, UdpNetwork, UnixNetwork
from jumpstarter_driver_network.framing import MAX_DATAGRAM, DatagramDecoder, encode_datagram

from jumpstarter.client import DriverConnectionError, DriverInvalidArgument, DriverMethodNotImplemented
from jumpstarter.testing import serve
from testsupport.network import HalfCloser, HttpSite, UdpPeer, free_port, has_ipv6_loopback, unresponsive_tcp

# -- TCP -----------------------------------------------------------------------------------


def test_tcp_stream_echoes_and_half_close_reaches_the_target(tcp_echo: tuple[str, int]) -> None:
    with serve(TcpNetwork(host=tcp_echo[0], port=tcp_echo[1])) as client:
        assert isinstance(client, NetworkClient)
        with client.stream() as connection:
            connection.send(b"hello ")
            connection.send(b"board")
            connection.send_eof()
            # The echo server sends <bye> only once it has read our end of stream.
            assert b"".join(connection) == b"hello board<bye>"


def test_tcp_half_close_from_the_target_keeps_our_side_open(half_closer: HalfCloser) -> None:
    with serve(TcpNetwork(host=half_closer.address[0], port=half_closer.address[1])) as client:
        with client.stream() as connection:
            assert b"".join(connection) == b"hello, then nothing more"  # the target's end of stream
            connection.send(b"still here")  # our direction is still open
            connection.send_eof()
        assert half_closer.received.get(timeout=5) == b"still here"


def test_tcp_http_1_0_request_with_a_write_shutdown_gets_its_answer(http_site: HttpSite) -> None:
    target = TcpNetwork(host=http_site.address[0], port=http_site.address[1])
    with serve(target) as client, client.stream() as connection:
        connection.send(b"GET /page3.html HTTP/1.0\r\nHost: board\r\n\r\n")
        connection.send_eof()
        response = b"".join(connection)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert body == http_site.pages["page3.html"]


def test_tcp_bulk_transfer_is_intact(http_site: HttpSite) -> None:
    target = TcpNetwork(host=http_site.address[0], port=http_site.address[1])
    with serve(target) as client, client.stream() as connection:
        connection.send(b"GET /big.bin HTTP/1.0\r\n\r\n")
        connection.send_eof()
        body = b"".join(connection).partition(b"\r\n\r\n")[2]
    assert body == http_site.pages["big.bin"]


def test_tcp_reset_by_the_target_fails_the_stream(tcp_resetter: tuple[str, int]) -> None:
    # A reset must not look like a complete answer: the stream fails, after what came before it.
    received = b""
    with serve(TcpNetwork(host=tcp_resetter[0], port=tcp_resetter[1])) as client, client.stream() as connection:
        connection.send(b"GET / HTTP/1.0\r\n\r\n")
        with pytest.raises(BrokenResourceError, match=r"TCP 127\.0\.0\.1:\d+: connection reset by peer"):
            for chunk in connection:
                received += chunk
    assert b"partial answer".startswith(received)


def test_tcp_refused_fails_at_open_with_the_target_named() -> None:
    port = free_port()
    with serve(TcpNetwork(host="127.0.0.1", port=port)) as client:
        refused = rf"cannot connect to TCP 127\.0\.0\.1:{port}: connection refused \(nothing listens there\)"
        with pytest.raises(DriverConnectionError, match=refused), client.stream():
            pass
        # The client is still usable after the error.
        assert client.address() == f"tcp://127.0.0.1:{port}"


def test_tcp_unresolvable_host_fails_at_open() -> None:
    with (
        serve(TcpNetwork(host="no-such-board.invalid", port=22)) as client,
        pytest.raises(DriverConnectionError, match=r"no-such-board\.invalid:22: the host name does not resolve"),
        client.stream(),
    ):
        pass


def test_tcp_target_that_does_not_answer_times_out_at_open() -> None:
    with (
        unresponsive_tcp() as (host, port),
        serve(TcpNetwork(host=host, port=port, connect_timeout=0.5)) as client,
        pytest.raises(DriverConnectionError, match=r"no answer within 0\.5 s"),
        client.stream(),
    ):
        pass


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_tcp_over_ipv6() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as listener:
        listener.bind(("::1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with serve(TcpNetwork(host="::1", port=port)) as client:
            assert client.address() == f"tcp://[::1]:{port}"
            with client.stream() as connection:
                peer, _ = listener.accept()
                with peer:
                    peer.sendall(b"over v6")
                    peer.shutdown(socket.SHUT_WR)
                    assert b"".join(connection) == b"over v6"


# -- address() -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("192.0.2.7", "tcp://192.0.2.7:8080"),
        ("2001:db8::7", "tcp://[2001:db8::7]:8080"),
        ("[2001:db8::7]", "tcp://[2001:db8::7]:8080"),  # a bracketed address in the config
        ("no-such-board.invalid", "tcp://no-such-board.invalid:8080"),  # kept as written if it does not resolve
    ],
)
def test_tcp_address(host: str, expected: str) -> None:
    with serve(TcpNetwork(host=host, port=8080)) as client:
        assert client.address() == expected


def test_address_resolves_host_names_on_the_exporter() -> None:
    with serve(UdpNetwork(host="localhost", port=5353)) as client:
        assert client.address() in ("udp://127.0.0.1:5353", "udp://[::1]:5353")


def test_unix_address_is_the_path() -> None:
    with serve(UnixNetwork(path="/run/qemu/monitor.sock")) as client:
        assert client.address() == "unix:///run/qemu/monitor.sock"


@pytest.mark.parametrize(
    "driver",
    [
        TcpNetwork(host="127.0.0.1", port=22, enable_address=False),
        UdpNetwork(host="127.0.0.1", port=53, enable_address=False),
        UnixNetwork(path="/tmp/x.sock", enable_address=False),
    ],
    ids=["tcp", "udp", "unix"],
)
def test_address_hidden_by_the_configuration(driver: TcpNetwork | UdpNetwork | UnixNetwork) -> None:
    with serve(driver) as client, pytest.raises(DriverInvalidArgument, match="enable_address is false"):
        client.address()


def test_echo_has_no_address() -> None:
    with serve(EchoNetwork()) as client, pytest.raises(DriverMethodNotImplemented):
        client.address()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"host": "h", "port": 0}, "port must be a port number from 1 to 65535, not 0"),
        ({"host": "h", "port": 65536}, "not 65536"),
        ({"host": " ", "port": 22}, "host must name the target"),
        ({"host": "h", "port": 22, "connect_timeout": 0}, "connect_timeout must be a positive number"),
    ],
)
def test_tcp_configuration_is_checked(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TcpNetwork(**fields)


# -- Unix ----------------------------------------------------------------------------------


def test_unix_stream_echoes_with_half_close(unix_echo: str) -> None:
    with serve(UnixNetwork(path=unix_echo)) as client, client.stream() as connection:
        connection.send(b"over a unix socket")
        connection.send_eof()
        assert b"".join(connection) == b"over a unix socket<bye>"


def test_unix_missing_socket_fails_at_open(short_tmp) -> None:
    path = str(short_tmp / "nobody.sock")
    with (
        serve(UnixNetwork(path=path)) as client,
        pytest.raises(DriverConnectionError, match=rf"cannot connect to Unix socket {path}: no such file"),
        client.stream(),
    ):
        pass


# -- Echo ----------------------------------------------------------------------------------


def test_echo_returns_everything_then_ends_after_half_close() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: more than the echo buffers, so it has to flow
    with serve(EchoNetwork()) as client, client.stream() as connection:
        connection.send(payload)
        connection.send_eof()
        assert b"".join(connection) == payload


# -- UDP -----------------------------------------------------------------------------------


def test_udp_datagrams_keep_their_boundaries_empty_and_largest_included(udp_echo: UdpPeer) -> None:
    sizes = [0, 1, 2, 100, 1400, 9000, 65507, 0, 3]
    sent = [bytes([index]) * size for index, size in enumerate(sizes)]
    with serve(UdpNetwork(host=udp_echo.address[0], port=udp_echo.address[1])) as client, client.datagrams() as udp:
        for datagram in sent:
            udp.send(datagram)
            # One at a time: a UDP echo may legitimately reorder or drop under load.
            assert udp.receive(timeout=5) == datagram
    assert udp_echo.received == sent


def test_udp_framed_stream_survives_a_stream_that_joins_writes(udp_echo: UdpPeer) -> None:
    # The blocking client.stream() joins small writes into larger frames; the `datagrams`
    # stream prefixes each datagram with its length, so the target still gets them one by one.
    sent = [b"d%03d" % index for index in range(200)]
    target = UdpNetwork(host=udp_echo.address[0], port=udp_echo.address[1])
    with serve(target) as client, client.stream("datagrams") as stream:
        for datagram in sent:
            stream.send(encode_datagram(datagram))
        decoder, echoed = DatagramDecoder(), []
        while len(echoed) < len(sent):
            echoed.extend(decoder.feed(stream.receive()))
    assert sorted(udp_echo.received) == sent  # each one whole: none merged, none split
    assert sorted(echoed) == sent


def test_udp_connect_carries_one_datagram_per_message(udp_echo: UdpPeer) -> None:
    # `connect` is the original's way (one stream message per datagram), kept for its clients.
    async def exchange(client: NetworkClient) -> list[bytes]:
        async with client.stream_async() as stream:
            for datagram in (b"one", b"two", b"three"):
                await stream.send(datagram)
            return [await stream.receive() for _ in range(3)]

    with serve(UdpNetwork(host=udp_echo.address[0], port=udp_echo.address[1])) as client:
        assert sorted(client.portal.call(exchange, client)) == [b"one", b"three", b"two"]
    assert sorted(udp_echo.received) == [b"one", b"three", b"two"]


def test_udp_target_not_there_yet_keeps_the_stream(udp_echo: UdpPeer, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port(socket.SOCK_DGRAM)
    with serve(UdpNetwork(host="127.0.0.1", port=port)) as client, client.datagrams() as udp:
        udp.send(b"anyone?")
        with pytest.raises(TimeoutError, match=r"no datagram within 0\.3 s"):
            udp.receive(timeout=0.3)
        # The target appears on that port: the same stream reaches it.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as late:
            late.bind(("127.0.0.1", port))
            udp.send(b"now?")
            data, peer = late.recvfrom(100)
            assert data == b"now?"
            late.sendto(b"yes", peer)
            assert udp.receive(timeout=5) == b"yes"
    assert any("port unreachable" in record.getMessage() for record in caplog.records)


def test_udp_datagram_too_large_is_refused_by_the_client(udp_echo: UdpPeer) -> None:
    with serve(UdpNetwork(host=udp_echo.address[0], port=udp_echo.address[1])) as client, client.datagrams() as udp:
        with pytest.raises(ValueError, match="UDP carries at most"):
            udp.send(b"x" * (MAX_DATAGRAM + 1))
        udp.send(b"fine")
        assert udp.receive(timeout=5) == b"fine"


def test_udp_unresolvable_host_fails_at_open() -> None:
    with (
        serve(UdpNetwork(host="no-such-board.invalid", port=53)) as client,
        pytest.raises(DriverConnectionError, match=r"cannot open UDP no-such-board\.invalid:53"),
        client.datagrams(),
    ):
        pass


def test_datagrams_refused_on_a_stream_driver() -> None:
    with (
        serve(EchoNetwork()) as client,
        pytest.raises(DriverMethodNotImplemented, match=r"datagrams\(\) and forward_udp\(\) are for UdpNetwork"),
        client.datagrams(),
    ):
        pass


# -- framing -------------------------------------------------------------------------------


def test_decoder_reassembles_datagrams_split_anywhere() -> None:
    datagrams = [b"", b"a", b"bc" * 300, b"", bytes(range(256))]
    encoded = b"".join(encode_datagram(d) for d in datagrams)
    for step in (1, 3, 4, 5, 7, 600, len(encoded)):
        decoder, decoded = DatagramDecoder(), []
        for offset in range(0, len(encoded), step):
            decoded.extend(decoder.feed(encoded[offset : offset + step]))
        assert decoded == datagrams, step
        assert decoder.pending == 0


def test_decoder_refuses_a_stream_that_is_not_framed() -> None:
    with pytest.raises(ValueError, match="does not carry length-prefixed datagrams"):
        DatagramDecoder().feed(b"GET / HTTP/1.0\r\n")


# -- async API -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_twins(tcp_echo: tuple[str, int], udp_echo: UdpPeer) -> None:
    from jumpstarter.testing import serve_async

    async with serve_async(TcpNetwork(host=tcp_echo[0], port=tcp_echo[1])) as client:
        assert await client.address_async() == f"tcp://{tcp_echo[0]}:{tcp_echo[1]}"
        async with client.forward_tcp_async() as (host, port), await anyio.connect_tcp(host, port) as local:
            await local.send(b"async")
            await local.send_eof()
            received = b""
            while True:
                try:
                    received += await local.receive()
                except EndOfStream:
                    break
            assert received == b"async<bye>"
    target = UdpNetwork(host=udp_echo.address[0], port=udp_echo.address[1])
    async with serve_async(target) as client, client.datagrams_async() as udp:
        await udp.send(b"x")
        await udp.send(b"")
        await udp.send(b"yz")
        assert [await udp.receive(), await udp.receive(), await udp.receive()] == [b"x", b"", b"yz"]


def test_driver_logs_do_not_hide_errors(caplog: pytest.LogCaptureFixture) -> None:
    # A refused stream is the client's error to report: the exporter does not log a traceback for it.
    caplog.set_level(logging.WARNING)
    with serve(TcpNetwork(host="127.0.0.1", port=free_port())) as client:
        with pytest.raises(DriverConnectionError), client.stream():
            pass
        client.address()  # still usable
    assert not [record for record in caplog.records if record.exc_info]
