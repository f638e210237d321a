"""`declared_length`: a Content-Length read without trusting it."""

import pytest

from resource_server.content_length import declared_length


@pytest.mark.parametrize(
    ("value", "length"),
    [
        ("0", 0),
        ("914", 914),
        (b"914", 914),
        ("0" * 5000 + "12", 12),  # int() refuses past 4,300 digits, zeros included
        ("9" * 5000, 10**18),
        ("1" + "0" * 18, 10**18),
        ("", None),
        (" 1", None),  # int() would take these three
        ("1_0", None),
        ("+1", None),
        ("\u00b2", None),  # a digit to str.isdigit, not to int()
        ("\u0661", None),  # ARABIC-INDIC DIGIT ONE: int() takes it, HTTP does not
    ],
    ids=repr,
)
def test_only_ascii_digits_declare_a_length(value, length):
    assert declared_length(value) == length
