"""Redirect URIs: what may be registered, and how a request's URI matches a registered one.

Registration (RFC 9700 section 4.1.3, RFC 8252): absolute https URIs, or http on the loopback
address `127.0.0.1` or `[::1]` (native apps; `localhost` is refused, RFC 8252 section 8.3);
never a fragment (RFC 6749 section 3.1.2), nor a query naming a parameter of the
authorization response.
Matching is exact string comparison (RFC 9700 section 4.1.1), except that a loopback URI
matches on any port (RFC 8252 section 7.3), since a native app listens on whatever port the
OS gives it.
"""

import re
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

MAX_LENGTH = 2000
# A loopback host (checked apart) and, if any, a port without leading zeros.
_LOOPBACK_NETLOC = re.compile(r"(?:[0-9.]+|\[[0-9A-Fa-f:.]+\])(?::([1-9][0-9]{0,4}))?")
# An https authority as browsers send it back: a host name (browsers follow `_` in one too)
# or IP literal, no user information, and, if any, a port without leading zeros.
_HTTPS_NETLOC = re.compile(r"(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::([1-9][0-9]{0,4}))?")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1"})
# The characters of an RFC 3986 URI (unreserved, reserved, and `%` of percent-encoding). Any
# other (`{`, `|`, `^`, `"`, ...) the redirect percent-encodes (Starlette's `Location`), and
# the app would be sent back to a URI other than the one registered.
_URI_CHARACTERS = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]*")
# What the issuer adds to a redirect URI's query (RFC 6749 4.1.2 and 4.1.2.1, RFC 9207, and
# `state` after a sign-out). A registered value beside ours would reach a client that reads
# the first one instead: a fixed `iss` defeats its mix-up check, a fixed `code` its login.
RESPONSE_PARAMETERS = frozenset({"code", "state", "iss", "error", "error_description", "error_uri"})


class RedirectUriError(ValueError):
    """A redirect URI cannot be registered."""


def check_registrable(uri: str) -> str:
    """The URI if it may be registered; `RedirectUriError` saying why not."""
    if len(uri) > MAX_LENGTH or not _URI_CHARACTERS.fullmatch(uri):
        raise RedirectUriError(f"not a usable redirect URI: {uri!r}")
    parts = _split(uri)
    if parts is None:
        raise RedirectUriError(f"not a usable redirect URI: {uri!r}")
    if "#" in uri:
        raise RedirectUriError(f"a redirect URI must not have a fragment: {uri}")
    # `;` too: some clients' parsers still split on it (HTML 4's recommendation).
    query = parts.query.replace(";", "&")
    named = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
    if taken := sorted(named & RESPONSE_PARAMETERS):
        raise RedirectUriError(
            f"a redirect URI's query must not name {', '.join(taken)} (the issuer adds it): {uri}"
        )
    if parts.scheme == "https" and parts.hostname:
        # The code is sent to the URI as registered: one a browser would rewrite (`HTTPS:`),
        # refuse (port 0 or 99999) or that carries a password is an error found too late.
        if not _is_plain_https(uri, parts):
            raise RedirectUriError(f"not a usable https redirect URI: {uri}")
        return uri
    # As it will be matched: a loopback URI varies in its port only, so it must be one whose
    # port can be left out (lower-case scheme, no user information, no port 0).
    if parts.scheme == "http" and _is_loopback_ip(parts.hostname):
        if _without_loopback_port(uri) is None:
            raise RedirectUriError(f"not a usable loopback redirect URI: {uri}")
        return uri
    raise RedirectUriError(
        f"a redirect URI must be https, or http on a loopback address (127.0.0.1, [::1]): {uri}"
    )


def matches(requested: str, registered: list[str]) -> bool:
    """Whether `requested` is one of the `registered` URIs (loopback: any port)."""
    if requested in registered:
        return True
    candidate = _without_loopback_port(requested)
    return candidate is not None and any(
        _without_loopback_port(uri) == candidate for uri in registered
    )


def with_parameters(uri: str, params: dict[str, str | None]) -> str:
    """`uri` with `params` (those not None) added to its query, which is kept exactly as
    registered (RFC 6749 3.1.2 "MUST be retained": decoded and encoded again, `flag` came
    back as `flag=` and a byte that is not UTF-8 as U+FFFD)."""
    parts = urlsplit(uri)
    added = urlencode({name: value for name, value in params.items() if value is not None})
    query = "&".join(part for part in (parts.query, added) if part)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _without_loopback_port(uri: str) -> str | None:
    """The loopback URI with its port left out; None for anything else. Only the port may
    vary, and only as a port: 1-65535 in decimal. Nothing `urlsplit` would forgive (spaces,
    tabs, `HTTP:`, an empty port) is, since the URI is redirected to as it was sent."""
    if not uri.startswith("http://") or not uri.isascii() or not uri.isprintable() or " " in uri:
        return None
    parts = _split(uri)
    if parts is None or not _is_loopback_ip(parts.hostname) or "#" in uri:
        return None
    port = _LOOPBACK_NETLOC.fullmatch(parts.netloc)
    if port is None or (port.group(1) is not None and int(port.group(1)) > 65535):
        return None  # user information, a port that is not one
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def _is_plain_https(uri: str, parts: SplitResult) -> bool:
    authority = _HTTPS_NETLOC.fullmatch(parts.netloc)
    return (
        uri.startswith("https://")
        and uri.isascii()
        and uri.isprintable()
        and authority is not None
        and (authority.group(1) is None or int(authority.group(1)) <= 65535)
    )


def _split(uri: str) -> SplitResult | None:
    """The URI's parts; None if `urlsplit` refuses it (a bad IPv6 literal: `http://[::1/cb`)."""
    try:
        return urlsplit(uri)
    except ValueError:
        return None


def _is_loopback_ip(host: str | None) -> bool:
    # The two literals RFC 8252 7.3 names, as written there: `127.0.0.2` is the machine too,
    # but no native app listens there, and `[0:0::1]` would match a URI of another spelling.
    return host in _LOOPBACK_HOSTS
