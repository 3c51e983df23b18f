"""Exporter side: serve driver trees over the jumpstarter.v1 protocol.

A `Session` runs one driver tree (no transport of its own); a session provider hands out
the session of each call: `SingleSession` (one tree, one session) or `Exporter` (a session
per set of connected clients, built from a configuration) or `LeaseSessions` (a fresh
session per lab lease, with its hooks). `listen` serves a provider's sessions on a Unix
socket and/or TCP, through one gRPC servicer (`serve_gated` puts any gRPC server behind the
TCP listener's defences: the lab controller and its router use it); `serve_until_signalled`
does so until SIGTERM or SIGINT, and stops even when driver code is stuck. `ControllerLink`
joins a lab controller with `LeaseSessions` (`serve_lab_until_signalled` runs it).
"""

from jumpstarter.exporter._controller_channel import ControllerAddress
from jumpstarter.exporter._controller_link import (
    EXIT_HOOK_FAILED,
    EXIT_REFUSED,
    ControllerLink,
    serve_lab_until_signalled,
)
from jumpstarter.exporter._leases import Lease, LeaseSessions
from jumpstarter.exporter._listeners import Listening, TcpListener, listen, serve_gated
from jumpstarter.exporter._provider import SessionProvider, SingleSession, StatusBoard
from jumpstarter.exporter._running import serve_until_signalled
from jumpstarter.exporter._shared_session import Exporter
from jumpstarter.exporter.session import Session

__all__ = [
    "EXIT_HOOK_FAILED",
    "EXIT_REFUSED",
    "ControllerAddress",
    "ControllerLink",
    "Exporter",
    "Lease",
    "LeaseSessions",
    "Listening",
    "Session",
    "SessionProvider",
    "SingleSession",
    "StatusBoard",
    "TcpListener",
    "listen",
    "serve_gated",
    "serve_lab_until_signalled",
    "serve_until_signalled",
]
