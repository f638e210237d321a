"""Access tokens: the RFC 9068 header and claims, signed with the ring's active key."""

import json
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet

from issuer.keys.files import FileKeyStore
from issuer.keys.ring import KeyRing
from issuer.oauth.tokens import TokenSigner
from tests.support import FakeClock, b64url, fresh_key_set, public_jwk

ISSUER = "https://issuer.test"
TTL = 900


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    return KeyRing(FileKeyStore(fresh_key_set(tmp_path / "keys")))


@pytest.fixture
def signer(ring: KeyRing, clock: FakeClock) -> TokenSigner:
    return TokenSigner(ring, ISSUER, TTL, clock=clock)


def published(ring: KeyRing) -> KeySet:
    return KeySet.import_key_set(json.loads(ring.current.jwks.body))


def decode(ring: KeyRing, token: str) -> jwt.Token:
    return jwt.decode(token, published(ring), algorithms=["RS256"])


def issue(signer: TokenSigner, **overrides: object):
    values: dict[str, object] = {
        "subject": "user-42",
        "client_id": "webapp",
        "audience": "billing",
        "scope": ("read", "write"),
    }
    values.update(overrides)
    return signer.issue(**values)  # type: ignore[arg-type]


def test_header_is_rs256_at_jwt_with_the_signing_kid(ring, signer):
    token = decode(ring, issue(signer).access_token)
    assert token.header == {"alg": "RS256", "typ": "at+jwt", "kid": ring.current.signing_kid}


def test_claims_follow_rfc_9068(ring, signer, clock):
    clock.advance(0.75)  # iat is whole seconds
    issued = issue(signer, username="alice")
    now = int(clock())
    assert decode(ring, issued.access_token).claims == {
        "iss": ISSUER,
        "sub": "user-42",
        "aud": "billing",
        "iat": now,
        "exp": now + TTL,
        "jti": issued.jti,
        "client_id": "webapp",
        "scope": "read write",
        "preferred_username": "alice",
    }
    assert (issued.expires_in, issued.expires_at, issued.scope) == (
        TTL,
        now + TTL,
        ("read", "write"),
    )


def test_times_come_from_the_clock(ring, signer, clock):
    first = decode(ring, issue(signer).access_token).claims
    clock.advance(3600)
    later = decode(ring, issue(signer).access_token).claims
    assert later["iat"] == first["iat"] + 3600
    assert later["exp"] == first["exp"] + 3600


def test_jti_is_unique_per_token(ring, signer):
    issued = [issue(signer) for _ in range(20)]
    jtis = {decode(ring, token.access_token).claims["jti"] for token in issued}
    assert len(jtis) == 20
    assert jtis == {token.jti for token in issued}


def test_no_scope_claim_when_no_scope_is_granted(ring, signer):
    issued = issue(signer, scope=())
    assert "scope" not in decode(ring, issued.access_token).claims
    assert issued.scope == ()


def test_no_preferred_username_unless_one_is_given(ring, signer):
    assert "preferred_username" not in decode(ring, issue(signer).access_token).claims


def test_per_call_ttl_overrides_the_default(ring, signer):
    issued = issue(signer, ttl=60)
    claims = decode(ring, issued.access_token).claims
    assert claims["exp"] - claims["iat"] == 60
    assert issued.expires_in == 60
    assert issued.expires_at == claims["exp"]


def test_audience_may_be_a_list(ring, signer):
    claims = decode(ring, issue(signer, audience=["billing", "reports"]).access_token).claims
    assert claims["aud"] == ["billing", "reports"]


def test_signature_verifies_only_with_the_published_keys(ring, signer, rsa_private_key):
    token = issue(signer).access_token
    kid = ring.current.signing_kid
    assert decode(ring, token).claims["sub"] == "user-42"
    stranger = KeySet.import_key_set({"keys": [public_jwk(rsa_private_key, kid)]})
    with pytest.raises(BadSignatureError):
        jwt.decode(token, stranger, algorithms=["RS256"])


def test_a_token_whose_claims_are_altered_after_signing_does_not_verify(ring, signer):
    issued = issue(signer).access_token
    header, payload, signature = issued.split(".")
    claims = decode(ring, issued).claims
    altered = b64url(json.dumps({**claims, "sub": "admin"}).encode())
    with pytest.raises(BadSignatureError):
        decode(ring, f"{header}.{altered}.{signature}")
    assert decode(ring, f"{header}.{payload}.{signature}").claims["sub"] == "user-42"


def test_tokens_are_signed_with_the_key_the_ring_swapped_in(ring, signer):
    first = ring.current.signing_kid
    assert decode(ring, issue(signer).access_token).header["kid"] == first
    ring.store.revoke(first)
    assert ring.reload_if_changed()
    token = issue(signer).access_token
    assert decode(ring, token).header["kid"] == ring.current.signing_kid != first
    id_token = signer.id_token(
        subject="user-42", client_id="webapp", auth_time=0, nonce=None, access_token=token
    )
    assert decode(ring, id_token).header["kid"] == ring.current.signing_kid


def test_id_token_claims_follow_openid_connect_core(ring, signer, clock):
    clock.advance(0.75)  # iat is whole seconds
    now = int(clock())
    token = signer.id_token(
        subject="user-42",
        client_id="webapp",
        auth_time=now - 30,
        nonce="n-0S6",
        access_token="jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y",
    )
    decoded = decode(ring, token)
    assert decoded.header == {"alg": "RS256", "typ": "JWT", "kid": ring.current.signing_kid}
    assert decoded.claims == {
        "iss": ISSUER,
        "sub": "user-42",
        "aud": "webapp",
        "iat": now,
        "exp": now + TTL,
        "auth_time": now - 30,
        "nonce": "n-0S6",
        # The worked example of OpenID Connect Core Appendix A.3 (RS256).
        "at_hash": "77QmUPtjPfzWtF2AnpK9RQ",
    }
