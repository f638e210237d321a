"""`id_token_hint`: what is read as one of our ID tokens, and what is not even looked at."""

from pathlib import Path

import pytest

from issuer.keys.files import FileKeyStore
from issuer.keys.ring import KeyRing
from issuer.oauth.tokens import TokenSigner
from issuer.oidc.id_token_hints import MAX_HINT_BYTES, IdTokenHint, IdTokenHints
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
    assert hints.read(largest) == IdTokenHint("webapp", "42")
    assert hints.read(id_token(length + 1)) is None
