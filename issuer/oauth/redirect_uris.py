"""Redirect URIs: what may be registered, and how a request's URI matches a registered one.

Registration (RFC 9700 section 4.1.3, RFC 8252): absolute https URIs, or http on a loopback
IP address (native apps; `localhost` is refused, RFC 8252 section 8.3); never a fragment
(RFC 6749 section 3.1.2). Matching is exact string comparison (RFC 9700 section 4.1.1),
except that a loopback URI matches on any port (RFC 8252 section 7.3), since a native app
listens on whatever port the OS gives it.
"""

import ipaddress
from urllib.parse import SplitResult, urlsplit, urlunsplit

MAX_LENGTH = 2000


class RedirectUriError(ValueError):
    """A redirect URI cannot be registered."""


def check_registrable(uri: str) -> str:
    """The URI if it may be registered; `RedirectUriError` saying why not."""
    if len(uri) > MAX_LENGTH or any(ch.isspace() for ch in uri):
        raise RedirectUriError(f"not a usable redirect URI: {uri!r}")
    parts = _split(uri)
    if parts is None:
        raise RedirectUriError(f"not a usable redirect URI: {uri!r}")
    if "#" in uri:
        raise RedirectUriError(f"a redirect URI must not have a fragment: {uri}")
    if parts.scheme == "https" and parts.hostname:
        return uri
    if parts.scheme == "http" and _is_loopback_ip(parts.hostname):
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


def _without_loopback_port(uri: str) -> str | None:
    """The loopback URI with its port left out; None for anything else (only the port of a
    loopback URI may vary: not its user information, which the host was rebuilt without)."""
    parts = _split(uri)
    if parts is None or parts.scheme != "http" or not _is_loopback_ip(parts.hostname):
        return None
    if "#" in uri or "@" in parts.netloc:
        return None
    try:
        parts.port  # noqa: B018 - raises for a malformed port
    except ValueError:
        return None
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def _split(uri: str) -> SplitResult | None:
    """The URI's parts; None if `urlsplit` refuses it (a bad IPv6 literal: `http://[::1/cb`)."""
    try:
        return urlsplit(uri)
    except ValueError:
        return None


def _is_loopback_ip(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
