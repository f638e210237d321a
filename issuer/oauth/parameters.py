"""Request parameters as RFC 6749 reads them, from a form body or a query string alike."""

from collections.abc import Iterable
from dataclasses import dataclass


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
