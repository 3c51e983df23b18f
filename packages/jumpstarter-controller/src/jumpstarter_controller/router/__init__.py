"""The router: pairs a client's and an exporter's RouterService streams by their token's subject.

`Router` holds the pairs and counts them; `add_router_service` serves it on a gRPC server (the
controller's own port, or a router process's: `jmp router run`); `tokens` mints and checks the
stream tokens that the controller hands to both ends of a stream.
"""

from jumpstarter_controller.router._router import DEFAULT_WAIT_SECONDS, ROUTER_SERVICE, Router, add_router_service
from jumpstarter_controller.router.tokens import (
    StreamClaims,
    StreamTokenError,
    mint_stream_token,
    verify_stream_token,
)

__all__ = [
    "DEFAULT_WAIT_SECONDS",
    "ROUTER_SERVICE",
    "Router",
    "StreamClaims",
    "StreamTokenError",
    "add_router_service",
    "mint_stream_token",
    "verify_stream_token",
]
