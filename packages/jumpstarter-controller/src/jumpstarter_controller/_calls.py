"""What every service call starts with: the caller's identity, and refusals in the original's codes."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc

from jumpstarter_controller.controller import Controller
from jumpstarter_controller.credentials import Identity, TokenError
from jumpstarter_controller.leases import RequestError


def bearer(metadata: Any) -> str | None:
    """The single ``authorization: Bearer TOKEN`` of a call (None when absent or repeated)."""
    found = [str(v) for k, v in metadata or () if k == "authorization"]
    if len(found) != 1:
        return None
    scheme, _, credential = found[0].partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else None


def check_identity(controller: Controller, metadata: Any, kind: str | None) -> Identity:
    """The caller behind the call's token, matching the jumpstarter-* keys it sent; TokenError otherwise."""
    token = bearer(metadata)
    if token is None:
        raise TokenError("no token: the call needs 'authorization: Bearer TOKEN' (the token of your config file)")
    identity = controller.identify(token, kind)
    sent = {k: str(v) for k, v in metadata or () if k.startswith("jumpstarter-")}
    said_kind = sent.get("jumpstarter-kind", "").lower()
    if said_kind and identity.kind != "admin" and said_kind != identity.kind:
        raise TokenError(f"the call says it is from a {said_kind}, and the token is a {identity.kind}'s")
    for key, mine in (("jumpstarter-namespace", identity.namespace), ("jumpstarter-name", identity.name)):
        if key in sent and sent[key] != mine and identity.kind != "admin":
            raise TokenError(f"{key} is {sent[key]!r}, and the token is for {mine!r}: check the config file")
    return identity


async def identify(controller: Controller, context: grpc.aio.ServicerContext[Any, Any], kind: str | None) -> Identity:
    try:
        return check_identity(controller, context.invocation_metadata(), kind)
    except TokenError as error:
        await abort(context, "UNKNOWN", str(error))


async def abort(context: grpc.aio.ServicerContext[Any, Any], code: str, message: str) -> NoReturn:
    await context.abort(getattr(grpc.StatusCode, code), message)
    raise AssertionError("unreachable")  # pragma: no cover


async def refuse(
    context: grpc.aio.ServicerContext[Any, Any], error: RequestError | LookupError | ValueError
) -> NoReturn:
    if isinstance(error, RequestError):
        await abort(context, error.code, str(error))
    if isinstance(error, LookupError):
        await abort(context, "NOT_FOUND", str(error.args[0]) if error.args else str(error))
    await abort(context, "INVALID_ARGUMENT", str(error))
