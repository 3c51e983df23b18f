"""Port forwards: local TCP, Unix and UDP listeners whose connections reach the target through the exporter."""

from __future__ import annotations

import http.client
import logging
import os
import socket
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from jumpstarter_driver_network.adapters import TcpPortforwardAdapter, UnixPortforwardAdapter
from jumpstarter_driver_network.driver import EchoNetwork, TcpNetwork, UdpNetwork

from jumpstarter.testing import serve
from testsupport.network import HttpSite, UdpPeer, free_port, recv_all


def exchange(address: tuple[str, int] | str, data: bytes) -> bytes:
    """Connect to a forward, send `data`, end our side, and return everything received until the end."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(address)
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return recv_all(sock)


# -- TCP -------------------------------------------------------------------------------------


def test_forward_tcp_each_connection_is_a_new_stream(tcp_echo: tuple[str, int]) -> None:
    with serve(TcpNetwork(host=tcp_echo[0], port=tcp_echo[1])) as client, client.forward_tcp() as (host, port):
        assert host == "127.0.0.1"
        assert port != 0
        # Half-close through the forward: the echo server answers <bye> only after our end of stream.
        assert exchange((host, port), b"first") == b"first<bye>"
        assert exchange((host, port), b"second") == b"second<bye>"


def test_forward_tcp_on_a_chosen_port(tcp_echo: tuple[str, int]) -> None:
    chosen = free_port()
    with serve(TcpNetwork(host=tcp_echo[0], port=tcp_echo[1])) as client, client.forward_tcp(chosen) as address:
        assert address == ("127.0.0.1", chosen)
        assert exchange(address, b"x") == b"x<bye>"


def test_http_server_fetched_through_a_forward(http_site: HttpSite) -> None:
    with serve(TcpNetwork(host=http_site.address[0], port=http_site.address[1])) as client:
        with client.forward_tcp() as address, urllib.request.urlopen(http_site.url(address, "page2.html")) as page:
            assert page.status == 200
            assert page.read() == http_site.pages["page2.html"]
        # HTTP/1.1 keep-alive: several requests over one forwarded connection.
        with client.forward_tcp() as (host, port):
            connection = http.client.HTTPConnection(host, port, timeout=20)
            try:
                for name in ("page0.html", "big.bin", "page9.html"):
                    connection.request("GET", f"/{name}")
                    response = connection.getresponse()
                    assert response.status == 200
                    assert response.read() == http_site.pages[name]
            finally:
                connection.close()


def test_a_page_that_opens_ten_connections_at_once(http_site: HttpSite) -> None:
    names = [f"page{index}.html" for index in range(10)]

    def fetch(address: tuple[str, int], name: str) -> bytes:
        with urllib.request.urlopen(http_site.url(address, name), timeout=20) as page:
            return page.read()

    target = TcpNetwork(host=http_site.address[0], port=http_site.address[1])
    with serve(target) as client, client.forward_tcp() as address, ThreadPoolExecutor(max_workers=10) as pool:
        pages = list(pool.map(lambda name: fetch(address, name), names))
    assert pages == [http_site.pages[name] for name in names]


def test_one_connection_reset_by_the_target_leaves_the_nine_others_intact(
    tcp_echo_or_reset: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    requests = [b"reset me" if index == 4 else b"connection %d " % index * 2000 for index in range(10)]

    def attempt(address: tuple[str, int], request: bytes) -> bytes | OSError:
        try:
            return exchange(address, request)
        except OSError as error:
            return error

    target = TcpNetwork(host=tcp_echo_or_reset[0], port=tcp_echo_or_reset[1])
    with serve(target) as client, client.forward_tcp() as address, ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda request: attempt(address, request), requests))
        # The forward still serves new connections afterwards.
        assert exchange(address, b"after") == b"after<bye>"
    for index, (request, result) in enumerate(zip(requests, results, strict=True)):
        if index == 4:
            # Reset, not ended: the local client cannot take the partial answer for a whole one.
            assert isinstance(result, ConnectionResetError), result
        else:
            assert result == request + b"<bye>", index
    assert any("connection reset by peer" in record.getMessage() for record in caplog.records)


def test_a_refused_target_resets_the_local_connection(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    with (
        serve(TcpNetwork(host="127.0.0.1", port=port)) as client,
        client.forward_tcp() as address,
        pytest.raises(ConnectionResetError),
    ):
        exchange(address, b"hello?")
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any(f"cannot connect to TCP 127.0.0.1:{port}: connection refused" in text for text in warnings), warnings


def test_leaving_the_forward_stops_listening_and_resets_open_connections(tcp_echo: tuple[str, int]) -> None:
    with serve(TcpNetwork(host=tcp_echo[0], port=tcp_echo[1])) as client:
        with client.forward_tcp() as address:
            open_connection = socket.create_connection(address, timeout=20)
            open_connection.sendall(b"ping")
            assert open_connection.recv(4) == b"ping"  # the stream is up
        with open_connection, pytest.raises(ConnectionResetError):
            open_connection.recv(100)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=20).close()


def test_a_forward_in_use_is_refused_as_a_second_listener(tcp_echo: tuple[str, int]) -> None:
    with serve(TcpNetwork(host=tcp_echo[0], port=tcp_echo[1])) as client, client.forward_tcp() as (_, port):
        with pytest.raises(OSError, match=r"(?i)address already in use"), client.forward_tcp(port):
            pass
        assert exchange(("127.0.0.1", port), b"still") == b"still<bye>"


@pytest.mark.parametrize("kind", ["tcp", "unix", "udp"])
def test_an_error_in_the_body_of_a_forward_propagates_as_itself(udp_echo: UdpPeer, kind: str) -> None:
    # The caller's code runs inside the forward's task group: its exception must come out as
    # raised, not wrapped in an ExceptionGroup that an `except ValueError` would miss.
    target = UdpNetwork(host=udp_echo.address[0], port=udp_echo.address[1])
    with serve(target) as client:
        forward = {"tcp": client.forward_tcp, "unix": client.forward_unix, "udp": client.forward_udp}[kind]
        with pytest.raises(ValueError, match=r"^the test's own error$"), forward():
            raise ValueError("the test's own error")


def test_forward_to_the_echo_mock() -> None:
    payload = os.urandom(3 << 20)
    with serve(EchoNetwork()) as client, client.forward_tcp() as address:
        assert exchange(address, payload) == payload


# -- Unix ------------------------------------------------------------------------------------


def test_forward_unix_in_a_private_directory_removed_on_exit(tcp_echo: tuple[str, int]) -> None:
    with serve(TcpNetwork(host=tcp_echo[0], port=tcp_echo[1])) as client:
        with client.forward_unix() as path:
            directory = Path(path).parent
            assert directory.stat().st_mode & 0o777 == 0o700
            assert exchange(path, b"over unix") == b"over unix<bye>"
            assert exchange(path, b"again") == b"again<bye>"
        assert not directory.exists()


def test_forward_unix_at_a_chosen_path(tcp_echo: tuple[str, int], short_tmp: Path) -> None:
    chosen = str(short_tmp / "board.sock")
    with serve(TcpNetwork(host=tcp_echo[0], port=tcp_echo[1])) as client:
        with client.forward_unix(chosen) as path:
            assert path == chosen
            assert exchange(path, b"here") == b"here<bye>"
        assert not os.path.exists(chosen)
        assert short_tmp.exists()  # only the socket is ours to remove


def test_forward_unix_in_a_missing_directory_fails_clearly(short_tmp: Path) -> None:
    with serve(EchoNetwork()) as client, pytest.raises(OSError), client.forward_unix(str(short_tmp / "no" / "s.sock")):
        pass


# -- UDP -------------------------------------------------------------------------------------


def test_forward_udp_keeps_datagram_boundaries_end_to_end(udp_echo: UdpPeer) -> None:
    sent = [b"a", b"", b"bb" * 700, b"c" * 65507, b"dd", bytes(range(256))]
    target = UdpNetwork(host=udp_echo.address[0], port=udp_echo.address[1])
    with (
        serve(target) as client,
        client.forward_udp() as address,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as local,
    ):
        local.settimeout(20)
        for datagram in sent:
            local.sendto(datagram, address)
            # One at a time: UDP on loopback does not reorder, but may drop under a burst.
            assert local.recvfrom(1 << 16) == (datagram, address)
    assert udp_echo.received == sent


def test_forward_udp_answers_go_back_to_the_peer_that_asked(udp_whoami: tuple[str, int]) -> None:
    target = UdpNetwork(host=udp_whoami[0], port=udp_whoami[1])
    with (
        serve(target) as client,
        client.forward_udp() as address,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second,
    ):
        for sock in (first, second):
            sock.settimeout(20)
        first.sendto(b"one", address)
        second.sendto(b"two", address)
        first_answer, second_answer = first.recv(100), second.recv(100)
        # Each local peer has its own stream, so the target sees two senders.
        assert first_answer.endswith(b":one")
        assert second_answer.endswith(b":two")
        assert first_answer.split(b":")[0] != second_answer.split(b":")[0]
        first.sendto(b"again", address)
        assert first.recv(100) == first_answer.split(b":")[0] + b":again"  # the same stream


def test_forward_udp_rejects_a_bad_idle_timeout(udp_echo: UdpPeer) -> None:
    target = UdpNetwork(host=udp_echo.address[0], port=udp_echo.address[1])
    with serve(target) as client, pytest.raises(ValueError, match="idle_timeout must be a positive number"):
        client.forward_udp(idle_timeout=0)


def test_forward_udp_opens_a_new_stream_after_an_idle_one_closed(udp_whoami: tuple[str, int]) -> None:
    target = UdpNetwork(host=udp_whoami[0], port=udp_whoami[1])
    with (
        serve(target) as client,
        client.forward_udp(idle_timeout=0.2) as address,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as local,
    ):
        local.settimeout(20)
        local.sendto(b"before", address)
        before = local.recv(100)
        # Quiet for longer than the idle timeout: the stream closes; the next datagram opens
        # a new one, whose UDP socket on the exporter has another port.
        time.sleep(1)
        local.sendto(b"after", address)
        after = local.recv(100)
    assert before.endswith(b":before")
    assert after.endswith(b":after")
    assert after.split(b":")[0] != before.split(b":")[0]


# -- the original's adapter names ------------------------------------------------------------


def test_adapters_under_the_original_names(tcp_echo: tuple[str, int]) -> None:
    with serve(TcpNetwork(host=tcp_echo[0], port=tcp_echo[1])) as client:
        with TcpPortforwardAdapter(client=client) as address:
            assert exchange(address, b"tcp") == b"tcp<bye>"
        with UnixPortforwardAdapter(client=client) as path:
            assert exchange(path, b"unix") == b"unix<bye>"
