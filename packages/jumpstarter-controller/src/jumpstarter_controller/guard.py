"""The controller port's gatekeeper: a call without a valid token is refused before it is read.

The same rules as an exporter's TCP listener (`jumpstarter.exporter.guard`): the refusal
reads none of the request, and refusals are logged at most once a minute. The code is
UNKNOWN with a clear text, as the original's controller answers (its clients show UNKNOWN's
text, and re-login when it says "token is expired"). `RouterService.Stream` carries a router
token, which the built-in router checks itself before it reads anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from jumpstarter.exporter.guard import RefusalLog, refusing_handler
from jumpstarter_controller._calls import check_identity
from jumpstarter_controller.controller import Controller
from jumpstarter_controller.credentials import TokenError

ROUTER_STREAM = "/jumpstarter.v1.RouterService/Stream"


class ControllerGuard(grpc.aio.ServerInterceptor):
    def __init__(self, controller: Controller, *, describe_peer: Callable[[str], str] = str) -> None:
        self._controller = controller
        self.describe_peer = describe_peer
        self._refusals = RefusalLog()

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: grpc.HandlerCallDetails
    ) -> Any:
        if details.method == ROUTER_STREAM:
            return await continuation(details)
        try:
            check_identity(self._controller, details.invocation_metadata, None)
        except TokenError as error:
            reason = str(error)

            def note(peer: str) -> None:
                self._refusals.note(f"refused a call of {details.method} from {self.describe_peer(peer)}: {reason}")

            return refusing_handler(grpc.StatusCode.UNKNOWN, reason, note)
        return await continuation(details)

    def close(self) -> None:
        self._refusals.close()
