"""Client and exporter tokens: JWTs (ES256) signed with the controller's key, checked on every call.

A token's subject names the identity and its version, ``client:<ns>:<name>:<version>``;
the identity must still exist with that version when the token is used, so deleting or
rotating an identity revokes its tokens at once. The original's clients parse the token as
a JWT (its expiry drives their re-login), so it must be one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["AUDIENCE", "ISSUER", "Identity", "TokenError", "TokenVerifier", "mint_identity_token"]

ISSUER = "https://jumpstarter.dev/controller"
AUDIENCE = "jumpstarter"
TOKEN_LIFETIME = 365 * 24 * 3600.0
KINDS = ("client", "exporter", "admin")


class TokenError(Exception):
    """The token cannot be used: the message says why (and contains "token is expired" when it is)."""


@dataclass(frozen=True)
class Identity:
    kind: str
    """client, exporter or admin."""
    namespace: str
    name: str
    version: int

    @property
    def subject(self) -> str:
        return f"{self.kind}:{self.namespace}:{self.name}:{self.version}"


def mint_identity_token(
    key: ec.EllipticCurvePrivateKey, identity: Identity, *, lifetime: float = TOKEN_LIFETIME
) -> tuple[str, float]:
    """A signed token for `identity`, and when it expires."""
    now = time.time()
    expiry = now + lifetime
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": identity.subject, "iat": int(now), "nbf": int(now) - 5,
              "exp": int(expiry)}  # fmt: skip
    return jwt.encode(claims, key, algorithm="ES256"), expiry


class TokenVerifier:
    """Checks signatures (and caches what it verified: the signature check costs the most)."""

    _CACHE = 4096

    def __init__(self, public_key: ec.EllipticCurvePublicKey) -> None:
        self._key = public_key
        self._cache: dict[str, tuple[Identity, float]] = {}

    def verify(self, token: str) -> Identity:
        cached = self._cache.get(token)
        if cached is not None:
            identity, expiry = cached
            if time.time() >= expiry:
                raise TokenError("token is expired: ask the administrator for a new one (jmp admin rotate)")
            return identity
        if len(token) > 4096:
            raise TokenError("the token is not one of this controller's tokens (it is too long)")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._key, algorithms=["ES256"], audience=AUDIENCE, issuer=ISSUER,
                options={"require": ["exp", "iat", "sub"]},
            )  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise TokenError("token is expired: ask the administrator for a new one (jmp admin rotate)") from None
        except jwt.PyJWTError:
            raise TokenError("the token is not one of this controller's tokens (bad signature or claims)") from None
        kind, _, rest = str(claims["sub"]).partition(":")
        namespace, _, rest = rest.partition(":")
        name, _, version = rest.partition(":")
        if kind not in KINDS or not version.isdigit():
            raise TokenError("the token's subject is not a client, exporter or admin of this controller")
        identity = Identity(kind, namespace, name, int(version))
        if len(self._cache) >= self._CACHE:
            self._cache.clear()
        self._cache[token] = (identity, float(claims["exp"]))
        return identity
