"""URL rules the verifier and the issuer share: issuer identifiers, which URLs may be fetched,
the origin a browser sends, and the one-word audience they compare exactly. Standard library
only, so settings load without the network stack."""

import ipaddress
from urllib.parse import SplitResult, urlsplit


def web_origin(url: str) -> str:
    """The origin a browser sends for pages under `url` (RFC 6454 section 6.1): scheme and
    host in lower case, the port only when it is not the scheme's default."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    port = "" if parts.port in (None, default) else f":{parts.port}"
    return f"{parts.scheme.lower()}://{host}{port}"


def require_web_origins(origins: list[str]) -> list[str]:
    """`origins` for CORS, each `*` or written as a browser sends it: the Origin header is
    compared exactly, so `http://app.example/` or `HTTP://App.Example:80` never matched."""
    for origin in origins:
        if origin == "*":
            continue
        try:
            expected = web_origin(origin)
        except ValueError:
            expected = None
        # Nor does a browser send a host with a space, or one not in ASCII (an internationalized
        # one goes in its xn-- form): "https://bücher.example" was taken and never matched.
        sendable = origin.isascii() and not _has_space_or_control(origin)
        if origin != expected or not origin.startswith(("http://", "https://")) or not sendable:
            written = f" ({expected})" if expected and "://" in origin and sendable else ""
            raise ValueError(
                f"{origin!r} is not an origin as browsers send it{written}: scheme://host"
                "[:port] in lower case and ASCII (a host's xn-- form), no default port, path or "
                "trailing slash"
            )
    return origins


def require_issuer_identifier(value: str) -> None:
    """ValueError unless `value` can be an issuer identifier (RFC 8414 section 2): an http
    or https URL with a host and no query, fragment or user information. It is compared
    exactly (`iss`), so its scheme must already be in the lower case everyone writes."""
    _require_no_spaces(value)  # urlsplit would drop a tab or newline; `iss` would keep it
    if not value.isascii():
        # A URL is ASCII (RFC 3986): browsers send an internationalized host as its xn--
        # form, so the sign-in pages' Origin check never matched one written otherwise.
        raise ValueError(
            "must be ASCII: an internationalized host in its xn-- form, other characters "
            "percent-encoded"
        )
    parts = _split(value)
    if not value.startswith(("http://", "https://")) or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host (scheme in lower case)")
    if parts.query or parts.fragment or "?" in value or "#" in value or "@" in parts.netloc:
        raise ValueError("must have no query, fragment or user information (RFC 8414)")


def require_one_word(audience: str) -> str:
    """`audience` if it is one word, as a client's audiences are: the issuer puts it in `aud`
    and the verifier compares it exactly, so "api " (a space left in an env file) would be a
    different audience from "api"."""
    if _has_space_or_control(audience):
        raise ValueError("must be one word, without spaces or control characters")
    return audience


def _has_space_or_control(value: str) -> bool:
    return any(ch.isspace() or not ch.isprintable() for ch in value)


def _require_no_spaces(url: str) -> None:
    # urlsplit drops a tab or newline silently and a leading space too; httpx refuses the
    # first two and takes ` https://...` as a relative URL.
    if _has_space_or_control(url):
        raise ValueError("must not hold spaces or control characters")


def _split(url: str) -> SplitResult:
    """`url` in parts, its port read (urlsplit reads it only when asked); port 0 refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if port == 0:
        raise ValueError("port 0 is not a port anyone can reach")
    return parts


def require_safe_url(
    url: str, allow_insecure_http: bool, override: str = "allow_insecure_http"
) -> None:
    """ValueError unless `url` can be fetched (a host, a port that is one, no spaces or
    control characters: taken otherwise, the verifier would retry a fetch no request can
    make, for ever) and is https, or plain http where that is allowed (loopback). `override`
    is what the message names as allowing http everywhere, as the caller spells it."""
    _require_no_spaces(url)
    parts = _split(url)
    if not parts.hostname:
        raise ValueError("must have a host")
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and (allow_insecure_http or _is_loopback(parts.hostname or "")):
        return
    # Shown brief and without user information: it may come from the network, or carry a
    # password.
    shown = repr(without_user_information(url))
    shown = shown if len(shown) <= 100 else f"{shown[:97]}..."
    raise ValueError(
        f"{shown} must use https (plain http is allowed for loopback hosts, "
        f"or everywhere with {override})"
    )


def without_user_information(url: str) -> str:
    """`url` as it may be shown in a log or an error: without the user information (a
    password, say) of `https://user:password@host/...`."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
