"""`id_token_hint`: what is read as one of our ID tokens, and what is not even looked at."""

import json
import time
from pathlib import Path

import pytest

from issuer.keys.files import FileKeyStore
from issuer.keys.model import RotationPolicy
from issuer.keys.ring import KeyRing
from issuer.oauth.tokens import TokenSigner
from issuer.oidc.id_token_hints import MAX_HINT_BYTES, IdTokenHint, IdTokenHints
from resource_server.base64url import b64url_decode, b64url_encode
from tests.support import fresh_key_set

ISSUER = "https://issuer.test"


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    return KeyRing(FileKeyStore(fresh_key_set(tmp_path / "keys")))


def test_a_hint_over_the_size_limit_is_not_read_though_it_is_ours(ring, clock):
    signer, hints = TokenSigner(ring, ISSUER, 900, clock=clock), IdTokenHints(ISSUER, ring)

    def id_token(nonce_length: int) -> str:
        return signer.id_token(
            subject="42",
            client_id="webapp",
            auth_time=int(clock()),
            nonce="n" * nonce_length,
            access_token="at",
        )

    # The longest nonce that keeps the token within the limit (base64url grows 4 for 3).
    length = (MAX_HINT_BYTES - len(id_token(0))) * 3 // 4 - 3
    while len(id_token(length + 1)) <= MAX_HINT_BYTES:
        length += 1
    largest = id_token(length)
    assert len(largest) == MAX_HINT_BYTES  # the limit itself is allowed
    assert hints.read(largest) == IdTokenHint("webapp", "42", int(clock()))
    assert hints.read(id_token(length + 1)) is None


def _with_kid(token: str, kid: object) -> str:
    """The token under another key's name: its signature no longer checks."""
    header = json.loads(b64url_decode(token.split(".")[0]))
    return ".".join(
        [b64url_encode(json.dumps({**header, "kid": kid}).encode()), *token.split(".")[1:]]
    )


def test_a_forgery_under_a_key_not_yet_retired_names_nothing_even_at_logout(ring, clock):
    # Only a retired key's tokens are taken unchecked: one under the active or next key's
    # name whose signature fails is a forgery, and must not choose a redirect.
    signer, hints = TokenSigner(ring, ISSUER, 900, clock=clock), IdTokenHints(ISSUER, ring)
    token = signer.id_token(
        subject="42", client_id="webapp", auth_time=int(clock()), nonce=None, access_token="at"
    )
    manifest = ring.current.manifest
    assert manifest.next is not None
    assert hints.read_for_logout(token) == IdTokenHint("webapp", "42", int(clock()))
    for record in (manifest.active, manifest.next):
        forged = _with_kid(token[:-4] + "AAAA", record.kid)
        assert hints.read(forged) is None
        assert hints.read_for_logout(forged) is None


def test_an_id_token_of_another_issuer_url_is_no_hint_though_signed_with_our_key(ring, clock):
    # The same keys behind another issuer URL (a renamed or second deployment): its tokens
    # are not ours to read.
    other = TokenSigner(ring, "https://other.test", 900, clock=clock)
    token = other.id_token(
        subject="42", client_id="webapp", auth_time=int(clock()), nonce=None, access_token="at"
    )
    hints = IdTokenHints(ISSUER, ring)
    assert hints.read(token) is None and hints.read_for_logout(token) is None
    assert IdTokenHints("https://other.test", ring).read(token) == IdTokenHint(
        "webapp", "42", int(clock())
    )


def test_an_access_token_signed_by_us_is_no_id_token_hint(ring, clock):
    # Same key, issuer and claims an ID token has, but its `typ` says what it is (RFC 9068).
    signer, hints = TokenSigner(ring, ISSUER, 900, clock=clock), IdTokenHints(ISSUER, ring)
    access = signer.issue(subject="42", client_id="webapp", audience="webapp", scope=("openid",))
    assert hints.read(access.access_token) is None
    assert hints.read_for_logout(access.access_token) is None


def test_a_retired_keys_token_names_its_client_only_and_only_as_a_string(tmp_path, clock):
    # Read unchecked, so whatever its payload says is the sender's word: a client id that
    # is no string names no client.
    keys = fresh_key_set(tmp_path / "keys")
    ring = KeyRing(FileKeyStore(keys))
    signer, hints = TokenSigner(ring, ISSUER, 900, clock=clock), IdTokenHints(ISSUER, ring)
    token = signer.id_token(
        subject="42", client_id="webapp", auth_time=int(clock()), nonce=None, access_token="at"
    )
    later = FileKeyStore(keys, clock=lambda: time.time() + 2 * 86400)
    policy = RotationPolicy(access_token_ttl=900, jwks_max_age=300)
    for store in (FileKeyStore(keys), later):  # a rotation, and one a day on
        store.rotate(policy, force=True)
    assert ring.reload_if_changed()
    header, payload, signature = token.split(".")
    record = ring.current.manifest.get(json.loads(b64url_decode(header))["kid"])
    assert record is not None and record.state == "retired"
    assert hints.read(token) is None
    assert hints.read_for_logout(token) == IdTokenHint("webapp", None)
    claims = json.loads(b64url_decode(payload))
    for aud in (["webapp"], {"webapp": 1}, None):
        forged = b64url_encode(json.dumps({**claims, "aud": aud}).encode())
        assert hints.read_for_logout(f"{header}.{forged}.{signature}") is None


@pytest.mark.parametrize("kid", [["k"], {"k": 1}, 7, None])
def test_a_hint_whose_kid_is_no_string_is_no_hint(ring, clock, kid):
    signer, hints = TokenSigner(ring, ISSUER, 900, clock=clock), IdTokenHints(ISSUER, ring)
    token = signer.id_token(
        subject="42", client_id="webapp", auth_time=int(clock()), nonce=None, access_token="at"
    )
    assert hints.read(_with_kid(token, kid)) is None
    assert hints.read_for_logout(_with_kid(token, kid)) is None


@pytest.mark.parametrize("header", ["[]", '"JWT"', "7", "null"])
def test_a_hint_whose_header_is_no_json_object_is_no_hint(ring, header):
    hints = IdTokenHints(ISSUER, ring)
    token = f"{b64url_encode(header.encode())}.{b64url_encode(b'{}')}.c2ln"
    assert hints.read(token) is None and hints.read_for_logout(token) is None
