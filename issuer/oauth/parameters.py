"""Request parameters as RFC 6749 reads them, from a form body or a query string alike."""

from collections.abc import Iterable
from dataclasses import dataclass

# The names an error may quote back: those the protocols define. Any other name is the
# sender's own text, and an error page quoting it would let another site write on ours.
_DEFINED_NAMES = frozenset(
    {
        "client_id", "client_secret", "code", "code_challenge", "code_challenge_method",
        "code_verifier", "grant_type", "id_token_hint", "login_hint", "max_age", "nonce",
        "password", "post_logout_redirect_uri", "prompt", "redirect_uri", "refresh_token",
        "request", "request_uri", "resource", "response_mode", "response_type", "scope",
        "state", "token", "token_type_hint", "username",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Parameters:
    """What a request sent, for its endpoint to judge by its own rules."""

    values: dict[str, str]  # section 3.1: a parameter sent without a value is omitted
    repeated: frozenset[str]  # section 3.1: "MUST NOT be included more than once"
    holds_nul: bool  # Appendix A: no parameter's syntax admits NUL (nor can PostgreSQL store it)


def read_parameters(pairs: Iterable[tuple[str, str]]) -> Parameters:
    values: dict[str, str] = {}
    sent: set[str] = set()
    repeated: set[str] = set()
    holds_nul = False
    for name, value in pairs:
        if name in sent:
            repeated.add(name)
        sent.add(name)
        holds_nul = holds_nul or "\x00" in name or "\x00" in value
        if value:
            values[name] = value
    return Parameters(values, frozenset(repeated), holds_nul)


def describe_repeated(repeated: Iterable[str]) -> str:
    """An error description for repeated parameters, naming only those the protocols define."""
    named = sorted(_DEFINED_NAMES.intersection(repeated))
    return f"repeated parameter: {', '.join(named)}" if named else "a parameter is repeated"
