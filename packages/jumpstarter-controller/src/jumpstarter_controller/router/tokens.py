"""Stream tokens: the JWTs that let a client and an exporter meet on a router.

The controller mints one per side of a stream (`mint_stream_token`) when a client dials a leased
exporter; the router checks it (`verify_stream_token`) and pairs the two callers whose tokens
name the same stream (the subject). ES256 only: the controller signs with its private key and a
router holds only the public key, so a router cannot mint tokens. The token itself is a
credential: it is never logged, and no error message quotes it.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jwt

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey, EllipticCurvePublicKey

__all__ = [
    "STREAM_AUDIENCE",
    "STREAM_ISSUER",
    "StreamClaims",
    "StreamTokenError",
    "mint_stream_token",
    "verify_stream_token",
]

STREAM_ISSUER = "https://jumpstarter.dev/stream"
STREAM_AUDIENCE = "https://jumpstarter.dev/router"
ALGORITHM = "ES256"
DEFAULT_TTL = datetime.timedelta(minutes=5)
# Clocks of the controller's and a router's hosts may differ a little.
LEEWAY = datetime.timedelta(seconds=10)


class StreamTokenError(ValueError):
    """A stream token is refused; the message says why (never the token)."""


@dataclass(frozen=True)
class StreamClaims:
    """What a valid stream token says."""

    stream_id: str
    lease: str
    jti: str
    expires: datetime.datetime


def mint_stream_token(
    private_key: EllipticCurvePrivateKey, *, stream_id: str, lease: str, ttl: datetime.timedelta = DEFAULT_TTL
) -> str:
    """A token for one side of stream `stream_id` of lease `lease`, valid for `ttl`."""
    if not stream_id or not lease:
        raise ValueError("a stream token needs a stream id and a lease name")
    now = datetime.datetime.now(datetime.UTC)
    claims = {
        "iss": STREAM_ISSUER,
        "aud": STREAM_AUDIENCE,
        "sub": stream_id,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": str(uuid.uuid4()),
        "lease": lease,
    }
    return jwt.encode(claims, private_key, algorithm=ALGORITHM)


def verify_stream_token(public_key: EllipticCurvePublicKey, token: str) -> StreamClaims:
    """The claims of `token` if this key signed it for a router and it is in date; StreamTokenError otherwise."""
    try:
        claims = jwt.decode(
            token,
            public_key,
            algorithms=[ALGORITHM],  # never what the token's header asks for
            audience=STREAM_AUDIENCE,
            issuer=STREAM_ISSUER,
            leeway=LEEWAY,
            options={"require": ["iss", "aud", "sub", "iat", "nbf", "exp", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise StreamTokenError("the stream token has expired: dial the exporter again for a new one") from None
    except jwt.ImmatureSignatureError:
        raise StreamTokenError("the stream token is not valid yet (are the hosts' clocks in step?)") from None
    except jwt.InvalidAudienceError:
        raise StreamTokenError("the token is not a stream token for a router (wrong audience)") from None
    except jwt.InvalidIssuerError:
        raise StreamTokenError("the token is not a stream token (wrong issuer)") from None
    except jwt.InvalidSignatureError:
        raise StreamTokenError(
            "the stream token's signature is bad: it was not signed by this router's controller"
        ) from None
    except jwt.MissingRequiredClaimError as error:
        raise StreamTokenError(f"the stream token is malformed: it has no {error.claim!r} claim") from None
    except jwt.InvalidAlgorithmError:
        raise StreamTokenError(f"the stream token is not signed with {ALGORITHM}") from None
    except jwt.InvalidTokenError as error:
        # DecodeError and the rest; PyJWT's messages describe the token's form, never quote it.
        raise StreamTokenError(f"the stream token is malformed ({error})") from None
    lease, subject, jti = claims.get("lease"), claims["sub"], claims["jti"]
    if not isinstance(lease, str) or not lease:
        raise StreamTokenError("the stream token is malformed: it names no lease")
    if not isinstance(subject, str) or not subject or not isinstance(jti, str) or not jti:
        raise StreamTokenError("the stream token is malformed: its subject and id must be strings")
    return StreamClaims(
        stream_id=subject,
        lease=lease,
        jti=jti,
        expires=datetime.datetime.fromtimestamp(claims["exp"], datetime.UTC),
    )
