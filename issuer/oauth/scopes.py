"""OAuth 2.0 scope strings (RFC 6749 section 3.3)."""

import functools
import re

from issuer.oauth.errors import InvalidScope

# scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


# Scope strings as clients are registered with and ask for are short, and the same few come on
# every token request: those are remembered. A long one is parsed each time, so a flood of
# distinct 60 KB scopes cannot pin 1,024 of them in memory.
_REMEMBERED_CHARS = 256


def parse_scope(value: str | None) -> tuple[str, ...]:
    """Split a space-delimited scope string into unique tokens, order kept."""
    if not value:
        return ()
    if len(value) <= _REMEMBERED_CHARS:
        return _parse_remembered(value)
    return _parse(value)


def _parse(value: str) -> tuple[str, ...]:
    tokens = value.split(" ")
    for token in tokens:
        if not _SCOPE_TOKEN.fullmatch(token):
            raise InvalidScope("scope must be space-separated tokens of printable ASCII")
    return tuple(dict.fromkeys(tokens))


_parse_remembered = functools.lru_cache(maxsize=1024)(_parse)


def format_scope(tokens: tuple[str, ...] | frozenset[str]) -> str:
    return " ".join(tokens)


def grant_scope(requested: str | None, allowed: frozenset[str]) -> tuple[str, ...]:
    """The scope to grant: all allowed when none is asked for, else a subset of allowed."""
    asked = parse_scope(requested)
    if not asked:
        return tuple(sorted(allowed))
    extra = [token for token in asked if token not in allowed]
    if extra:
        raise InvalidScope(f"scope not allowed: {' '.join(extra)}")
    return asked


# OpenID Connect Core 5.4: scopes that ask for identity, not API access. A user holds them
# by having an account; a client must still be registered for them.
IDENTITY_SCOPES = ("openid", "profile", "email")
# What the consent page says each scope lets an app do.
SCOPE_DESCRIPTIONS = {
    # The username comes with `openid` (in every token and from /userinfo), so it says so.
    "openid": "Sign you in with your account and see your username",
    "profile": "See your username",
    "email": "See your email address",
}


def held_by_user(scope: tuple[str, ...], user_scopes: frozenset[str]) -> tuple[str, ...]:
    """The part of `scope` a user holds: identity scopes, and API scopes granted to the user.

    The one rule for a grant made to a user through the browser, and for its refreshes.
    """
    return tuple(s for s in scope if s in IDENTITY_SCOPES or s in user_scopes)


def describe_scope(scope: str) -> str:
    return SCOPE_DESCRIPTIONS.get(
        scope, f"Use the API on your behalf with the {scope!r} permission"
    )
