"""Which redirect URIs may be registered, and how requested ones match (RFC 8252, RFC 9700)."""

import pytest

from issuer.oauth.pkce import challenge_of, valid_challenge, verifies
from issuer.oauth.redirect_uris import (
    MAX_LENGTH,
    RedirectUriError,
    check_registrable,
    matches,
    with_parameters,
)


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example/cb",
        "https://app.example/cb?tenant=1",
        "https://app.example:8443/cb",
        "https://my_app.example/cb",  # browsers follow an underscore in a host name
        "https://[2001:db8::1]/cb",
        "http://127.0.0.1/cb",
        "http://[::1]:8080/cb",
        "https://app.example:65535/cb",
        "https://app.example/" + "a" * (MAX_LENGTH - 20),  # MAX_LENGTH exactly
    ],
)
def test_https_and_loopback_http_may_be_registered(uri):
    assert check_registrable(uri) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example/cb#fragment",
        "http://app.example/cb",
        "http://localhost/cb",
        "http://10.0.0.1/cb",  # a private address is not the device itself (RFC 8252 8.3)
        "http://192.168.0.1:8080/cb",
        "http://127.0.0.2/cb",  # loopback, but not one of the two literals RFC 8252 7.3 names
        "http://[0:0:0:0:0:0:0:1]/cb",
        "http://127.0.0.1/caf\u00e9",
        "com.example.app:/cb",
        "https:///no-host",
        "javascript:alert(1)",
        "https://app.example/c b",
        "http://[::1/cb",
        "https://[evil]/cb",
        # Loopback URIs that could never match on another port (matching is strict).
        "HTTP://127.0.0.1/cb",
        "http://127.0.0.1:/cb",
        "http://127.0.0.1:0/cb",
        "http://user@127.0.0.1/cb",
        # https URIs a browser would rewrite or refuse, or that carry a password (the audit).
        "HTTPS://app.example/cb",
        "https://app.example:99999/cb",
        "https://app.example:0/cb",
        "https://app.example:/cb",
        "https://app.example:0443/cb",
        "https://user:pw@app.example/cb",
        "https://app.example/caf\u00e9",
        "https://app.example/cb\x7f",
        "https://app.example:65536/cb",
        "https://app.example/" + "a" * (MAX_LENGTH - 19),
        "https://app.example/" + "a" * 2000,  # longer than MAX_LENGTH
        # A value of its own beside the issuer's: a client reading the first one would take a
        # fixed `iss` (mix-up, RFC 9207) or `code` (the review).
        "https://app.example/cb?code=x",
        "https://app.example/cb?tenant=1&iss=https://evil.example",
        "http://127.0.0.1/cb?%73tate=x",
        "https://app.example/cb?error",
        "https://app.example/cb?error_description=&error_uri=x",
        "https://app.example/cb?x=1;code=evil",  # split on `;` by some clients' parsers
        # No URI characters (RFC 3986): the redirect would send them percent-encoded, so the
        # app would get back another URI than it registered (the review).
        "https://app.example/c|b",
        "https://app.example/cb?x={a}",
        "http://127.0.0.1/cb?x=^",
        'https://app.example/cb?x="1"',
        "https://app.example/cb?x=<a>",
        "https://app.example/c\\b",
        "https://app.example/cb?x=`",
    ],
)
def test_fragments_plain_http_and_other_schemes_are_refused(uri):
    with pytest.raises(RedirectUriError):
        check_registrable(uri)


def test_matching_is_exact_except_for_loopback_ports():
    registered = ["https://app.example/cb", "http://127.0.0.1/callback", "http://[::1]/cb"]
    assert matches("https://app.example/cb", registered)
    for near_miss in (
        "https://app.example/cb/",
        "https://app.example/cb?x=1",
        "https://APP.example/cb",
        "https://app.example:443/cb",
        "http://127.0.0.1/callback/x",
        "http://127.0.0.2/callback",
        # On any port, a loopback URI is still matched whole but for its port.
        "http://127.0.0.1:51004/callback?x=1",
        "http://127.0.0.1:51004/callback#x",
        "http://127.0.0.1:51004/call\tback",  # urlsplit drops the tab; the redirect would not
    ):
        assert not matches(near_miss, registered), near_miss
    assert matches("http://127.0.0.1:51004/callback", registered)
    assert matches("http://[::1]:8080/cb", registered)
    assert not matches("http://127.0.0.1:bad/callback", registered)
    assert matches("http://127.0.0.1:65535/callback", registered)
    assert not matches("http://127.0.0.1:65536/callback", registered)


@pytest.mark.parametrize(
    "requested",
    [
        "http://[::1/cb",  # urlsplit raised ValueError: /authorize answered 500
        "http://[evil]/cb",
        "http://evil.example@127.0.0.1:5555/callback",  # only the port may vary
        "http://user:pw@127.0.0.1/callback",
    ],
)
def test_malformed_uris_and_loopback_user_information_do_not_match(requested):
    assert not matches(requested, ["http://127.0.0.1/callback", "http://[::1]/cb"])


def test_parameters_are_added_to_the_query_as_registered_and_unset_ones_left_out():
    added = {"code": "c1", "state": None, "iss": "https://issuer.example"}
    assert with_parameters("https://app.example/cb", added) == (
        "https://app.example/cb?code=c1&iss=https%3A%2F%2Fissuer.example"
    )
    assert with_parameters("https://app.example/cb?flag", {"state": None}) == (
        "https://app.example/cb?flag"
    )


def test_pkce_s256_round_trip_and_refusals():
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 appendix B
    challenge = challenge_of(verifier)
    assert challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert valid_challenge(challenge) and verifies(verifier, challenge)
    assert not verifies(verifier[:-1] + "x", challenge)
    assert not verifies("short", challenge)
    # RFC 7636 4.1: 43 to 128 characters, even one its own challenge was made from.
    for out_of_range in ("x" * 42, "x" * 129, "short"):
        assert not verifies(out_of_range, challenge_of(out_of_range)), len(out_of_range)
    assert verifies("x" * 43, challenge_of("x" * 43)) and verifies(
        "x" * 128, challenge_of("x" * 128)
    )
    assert not valid_challenge("x" * 42) and not valid_challenge("=" * 43)


def test_pkce_takes_every_unreserved_character_and_only_a_base64url_s256_challenge():
    # RFC 7636 4.1: ALPHA / DIGIT / "-" / "." / "_" / "~"; an app may draw from all of them.
    verifier = "-._~" * 11
    assert verifies(verifier, challenge_of(verifier))
    # 4.2: BASE64URL of a SHA-256, 43 characters exactly, never standard base64 (a code
    # asked for with one could never be redeemed).
    for challenge in ("x" * 44, "+" * 43, "/" * 43, "x" * 43 + "\n"):
        assert not valid_challenge(challenge), challenge
