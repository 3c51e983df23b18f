"""A network namespace joined to this one by a veth pair, made by a test (root only), for links that break.

with veth_namespace() as net:                 # skip the test with `net_skip_reason()` first
    net.run("jmp", "exporter", "run", ...)    # argv to start inside the namespace
    net.link(up=False)                        # the cable pulled; net.link(up=True) puts it back

The addresses (10.213.N.1 here, 10.213.N.2 there) exist only on the pair: traffic never leaves the host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["Namespace", "net_skip_reason", "veth_namespace"]


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)


def net_skip_reason() -> str | None:
    """Why this machine cannot give a test a namespace of its own (None: it can)."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    probe = f"jmp-probe-{os.getpid()}"
    made = _ip("netns", "add", probe)
    if made.returncode != 0:
        return f"ip netns add is refused here: {made.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


@dataclass(frozen=True)
class Namespace:
    name: str
    host_address: str
    """This side's address of the pair: where the namespace reaches this side's listeners."""
    address: str
    host_link: str

    def run(self, *argv: str) -> list[str]:
        """`argv`, to be started inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def link(self, *, up: bool) -> None:
        result = _ip("link", "set", self.host_link, "up" if up else "down")
        assert result.returncode == 0, result.stderr


@contextmanager
def veth_namespace() -> Iterator[Namespace]:
    tag = os.getpid() % 250 + 1
    name, host_link, inner_link = f"jmp-net-{os.getpid()}", f"jmph{tag}", f"jmpn{tag}"
    namespace = Namespace(name, f"10.213.{tag}.1", f"10.213.{tag}.2", host_link)
    steps = [
        ("netns", "add", name),
        ("link", "add", host_link, "type", "veth", "peer", "name", inner_link),
        ("link", "set", inner_link, "netns", name),
        ("addr", "add", f"{namespace.host_address}/30", "dev", host_link),
        ("link", "set", host_link, "up"),
        ("-n", name, "addr", "add", f"{namespace.address}/30", "dev", inner_link),
        ("-n", name, "link", "set", inner_link, "up"),
        ("-n", name, "link", "set", "lo", "up"),
    ]
    try:
        for step in steps:
            result = _ip(*step)
            assert result.returncode == 0, f"ip {' '.join(step)}: {result.stderr.strip()}"
        yield namespace
    finally:
        _ip("link", "del", host_link)  # deletes its peer too
        _ip("netns", "del", name)
