"""Dashboard sessions: login with a token or a one-time link, cookies, same-site tokens.

A session lives in the controller's memory only (a restart logs everyone out) and expires
after its lifetime (`SESSION_SECONDS` unless configured). It keeps the token it was opened with, checked again on every
request, so rotating or deleting a client ends its sessions at once. Every form that acts
carries the session's CSRF token, and a POST must come from this same origin.

A one-time link (`jmp admin dashboard-login`) carries a short-lived JWT signed with the
controller's signing key for the audience `jumpstarter-dashboard`; its id is remembered
until it expires, so it opens one session only.
"""

from __future__ import annotations

import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

from jumpstarter_controller.credentials import ISSUER, Identity, TokenError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey, EllipticCurvePublicKey

__all__ = ["COOKIE", "LOGIN_AUDIENCE", "Session", "Sessions", "mint_login_token"]

COOKIE = "jmp_dashboard"
SESSION_SECONDS = 8 * 3600.0
LOGIN_AUDIENCE = "jumpstarter-dashboard"
LOGIN_SECONDS = 120.0
MAX_SESSIONS = 10_000


@dataclass
class Session:
    identity: Identity
    token: str | None
    """The token it was opened with (None for a one-time link: the admin)."""
    csrf: str
    expires: float

    @property
    def admin(self) -> bool:
        return self.identity.kind == "admin"

    @property
    def who(self) -> str:
        return "admin:dashboard" if self.admin else f"client:{self.identity.name}"


def mint_login_token(key: EllipticCurvePrivateKey) -> str:
    """A one-time admin login token, valid for two minutes."""
    now = time.time()
    claims = {"iss": ISSUER, "aud": LOGIN_AUDIENCE, "sub": "admin", "iat": int(now), "exp": int(now + LOGIN_SECONDS),
              "jti": str(uuid.uuid4())}  # fmt: skip
    return jwt.encode(claims, key, algorithm="ES256")


class Sessions:
    def __init__(self, verify_key: EllipticCurvePublicKey, identify: Any, lifetime: float = SESSION_SECONDS) -> None:
        self.lifetime = lifetime
        self._verify_key = verify_key
        self._identify = identify
        self._sessions: dict[str, Session] = {}
        self._used: dict[str, float] = {}

    def open_with_token(self, token: str) -> tuple[str, Session]:
        """A session for a client token or the admin credential; TokenError says why not."""
        identity = self._identify(token.strip())
        if identity.kind == "exporter":
            raise TokenError("this is an exporter's token: log in with a client token or the admin credential")
        return self._open(identity, token.strip())

    def open_with_link(self, token: str) -> tuple[str, Session]:
        """A session for a one-time link's token; TokenError if it is bad, expired or used."""
        try:
            claims = jwt.decode(token, self._verify_key, algorithms=["ES256"], audience=LOGIN_AUDIENCE, issuer=ISSUER,
                                options={"require": ["exp", "jti"]})  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise TokenError("this login link has expired: run jmp admin dashboard-login again") from None
        except jwt.PyJWTError:
            raise TokenError("this is not a login link of this controller") from None
        now = time.time()
        self._used = {jti: expiry for jti, expiry in self._used.items() if expiry > now}
        jti = str(claims["jti"])
        if jti in self._used:
            raise TokenError("this login link was used already: run jmp admin dashboard-login again")
        self._used[jti] = float(claims["exp"])
        return self._open(Identity("admin", "", "admin", 1), None)

    def _open(self, identity: Identity, token: str | None) -> tuple[str, Session]:
        now = time.time()
        if len(self._sessions) >= MAX_SESSIONS:
            self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
        session_id = secrets.token_urlsafe(32)
        session = Session(identity, token, secrets.token_urlsafe(24), now + self.lifetime)
        self._sessions[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session behind a cookie: None if unknown, expired, or its token no longer valid."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires <= time.time():
            del self._sessions[session_id]
            return None
        if session.token is not None:
            try:
                self._identify(session.token)
            except TokenError:
                del self._sessions[session_id]
                return None
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)


def csrf_ok(session: Session, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(session.csrf.encode(), given.encode())
