"""base64url as JOSE writes it (RFC 7515 section 2): one accepted spelling for each byte string."""

import base64
import itertools
import os

import pytest

from resource_server.base64url import b64url_decode, b64url_encode

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.mark.parametrize("length", range(0, 40))
def test_what_is_encoded_decodes_to_itself(length):
    for _ in range(10):
        data = os.urandom(length)
        assert b64url_decode(b64url_encode(data)) == data


@pytest.mark.parametrize("prefix", ["", "QUJD"])
def test_a_final_group_is_accepted_exactly_when_it_is_the_canonical_encoding(prefix):
    for tail in itertools.chain(
        ("".join(pair) for pair in itertools.product(ALPHABET, repeat=2)),
        ("Q" + "".join(pair) for pair in itertools.product(ALPHABET, repeat=2)),
    ):
        segment = prefix + tail
        lenient = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        canonical = b64url_encode(lenient) == segment
        try:
            accepted = b64url_decode(segment) == lenient
        except ValueError:
            accepted = False
        assert accepted == canonical, segment


@pytest.mark.parametrize(
    "segment", ["QUJD+A", "QUJD/A", "QUI=", "QU JD", "QUJD\n", "QU~JD", "Q", "QUJDR", "é"]
)
def test_anything_else_is_refused(segment):
    assert b64url_decode("QUI") == b"AB"  # the well-formed spelling of the first cases
    with pytest.raises(ValueError):
        b64url_decode(segment)
