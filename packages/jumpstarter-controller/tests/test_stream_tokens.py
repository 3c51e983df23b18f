"""Stream tokens: minted by the controller's key, checked with its public key, refused with a reason."""

from __future__ import annotations

import base64
import datetime
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jumpstarter_controller.router.tokens import (
    STREAM_AUDIENCE,
    STREAM_ISSUER,
    StreamTokenError,
    mint_stream_token,
    verify_stream_token,
)

KEY = ec.generate_private_key(ec.SECP256R1())


def test_round_trip() -> None:
    token = mint_stream_token(KEY, stream_id="stream-1", lease="lease-a")
    claims = verify_stream_token(KEY.public_key(), token)
    assert (claims.stream_id, claims.lease) == ("stream-1", "lease-a")
    remaining = claims.expires - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(minutes=4) < remaining <= datetime.timedelta(minutes=5)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["iss"] == STREAM_ISSUER and payload["aud"] == STREAM_AUDIENCE and payload["sub"] == "stream-1"
    assert payload["iat"] == payload["nbf"]
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    # Every token has its own id, even for one stream.
    assert (
        verify_stream_token(KEY.public_key(), mint_stream_token(KEY, stream_id="stream-1", lease="l")).jti != claims.jti
    )


def refusal(token: str) -> str:
    with pytest.raises(StreamTokenError) as caught:
        verify_stream_token(KEY.public_key(), token)
    message = str(caught.value)
    assert "\n" not in message
    assert len(token) < 10 or token not in message
    return message


def test_expired() -> None:
    token = mint_stream_token(KEY, stream_id="s", lease="l", ttl=datetime.timedelta(seconds=-60))
    assert refusal(token) == "the stream token has expired: dial the exporter again for a new one"


def test_another_key() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    assert "signature is bad" in refusal(mint_stream_token(other, stream_id="s", lease="l"))


def test_wrong_audience_and_issuer() -> None:
    now = datetime.datetime.now(datetime.UTC)
    base = {"sub": "s", "iat": now, "nbf": now, "exp": now + datetime.timedelta(minutes=1), "jti": "j", "lease": "l"}
    client_token = jwt.encode({**base, "iss": STREAM_ISSUER, "aud": "https://jumpstarter.dev/controller"}, KEY, "ES256")
    assert "wrong audience" in refusal(client_token)
    assert "wrong issuer" in refusal(jwt.encode({**base, "iss": "https://else", "aud": STREAM_AUDIENCE}, KEY, "ES256"))
    no_lease = {key: value for key, value in base.items() if key != "lease"}
    assert "names no lease" in refusal(
        jwt.encode({**no_lease, "iss": STREAM_ISSUER, "aud": STREAM_AUDIENCE}, KEY, "ES256")
    )
    no_jti = {key: value for key, value in base.items() if key != "jti"}
    assert "no 'jti' claim" in refusal(
        jwt.encode({**no_jti, "iss": STREAM_ISSUER, "aud": STREAM_AUDIENCE}, KEY, "ES256")
    )


def test_other_algorithms_are_refused() -> None:
    now = datetime.datetime.now(datetime.UTC)
    claims = {
        "iss": STREAM_ISSUER,
        "aud": STREAM_AUDIENCE,
        "sub": "s",
        "iat": now,
        "nbf": now,
        "exp": now + datetime.timedelta(minutes=1),
        "jti": "j",
        "lease": "l",
    }
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert "not signed with ES256" in refusal(jwt.encode(claims, rsa_key, "RS256"))
    # alg=none: a token with no signature at all.
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps({**claims, "iat": 0, "nbf": 0, "exp": 2**40}).encode()).rstrip(b"=")
    assert "not signed with ES256" in refusal(f"{header}.{body.decode()}.")


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "Bearer x"])
def test_malformed(token: str) -> None:
    assert refusal(token).startswith("the stream token is malformed")


def test_minting_needs_a_stream_and_a_lease() -> None:
    with pytest.raises(ValueError, match="needs a stream id and a lease"):
        mint_stream_token(KEY, stream_id="", lease="l")
