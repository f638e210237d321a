"""The client's address for rate limits and audit lines, forgery-proof by construction.

The TCP peer is the client unless it is a trusted proxy (`ISSUER_TRUSTED_PROXIES`, default
none). Behind trusted proxies the forwarding header is read right to left, skipping trusted
hops: the first address that is not a trusted proxy is the client, because everything left
of it was written by the client itself (nginx's `$proxy_add_x_forwarded_for` appends to the
client's own header). An entry that is not an address ends the walk at the hop that wrote it.
This never depends on the ASGI server's own proxy-header handling (run uvicorn with
`--no-proxy-headers`, which rewrites the peer before the app sees it).
"""

import functools
import ipaddress
from collections.abc import Iterable, Sequence
from typing import Literal

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
UNKNOWN = "unknown"


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """`ISSUER_TRUSTED_PROXIES` entries as networks; `ValueError` names a bad one."""
    networks = []
    for value in values:
        try:
            network = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise ValueError(f"not an IP address or CIDR range: {value!r}") from None
        networks.append(_unmapped(network))
    return tuple(networks)


def _unmapped(network: Network) -> Network:
    """An IPv4-mapped range ("::ffff:10.0.0.5") as the IPv4 range it names.

    Peers are compared in IPv4 form (`_address` unmaps them), so a mapped entry, as a
    dual-stack socket prints a proxy's address, would otherwise never match.
    """
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


class ClientAddresses:
    """Finds the client's address in a request, given the proxies trusted to report it."""

    def __init__(
        self,
        trusted: Sequence[Network] = (),
        header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for",
    ):
        self._trusted = tuple(trusted)
        self._header = header.encode()

    def of(self, scope: Scope) -> str:
        """The client's address in canonical form, or "unknown" when there is no peer."""
        client = scope.get("client")
        peer = _address(client[0]) if client else None
        if peer is None:
            return UNKNOWN
        if not self._is_trusted(peer):
            return str(peer)
        hops = list(self._forwarded_hops(scope))
        nearest = peer
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                return str(nearest)  # garbage from beyond the last trusted hop
            if not self._is_trusted(address):
                return str(address)
            nearest = address
        return str(nearest)

    def _is_trusted(self, address: Address) -> bool:
        return any(address in network for network in self._trusted)

    def _forwarded_hops(self, scope: Scope) -> Iterable[str]:
        # Repeated header lines form one list, in order (RFC 9110 section 5.3).
        for name, value in scope["headers"]:
            if name != self._header:
                continue
            for element in value.decode("latin-1").split(","):
                if self._header == b"forwarded":
                    yield _forwarded_for(element)
                else:
                    yield element.strip()


def _forwarded_for(element: str) -> str:
    """The `for=` node of one RFC 7239 element ("" if there is none)."""
    for pair in element.split(";"):
        name, _, value = pair.strip().partition("=")
        if name.lower() == "for":
            return value.strip().strip('"')
    return ""


def _address(value: str) -> Address | None:
    """An IP address, with any port or brackets removed; None for anything else."""
    # Only short values are remembered: an entry of a forwarding header can be as long as the
    # header, and 4,096 of them (sent by a client in a trusted range) held hundreds of MB.
    return _address_cached(value) if len(value) <= 64 else _parse_address(value)


@functools.lru_cache(maxsize=4096)  # a pure function of the text; peers repeat
def _address_cached(value: str) -> Address | None:
    return _parse_address(value)


def _parse_address(value: str) -> Address | None:
    value = value.strip()
    if value.startswith("["):  # "[2001:db8::1]:4711" (RFC 7239 section 6)
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:  # "192.0.2.60:8080"
        value = value.split(":", 1)[0]
    if len(value) > 45:  # longer than any textual IPv6 address
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            # "fe80::1%eth0": the zone names an interface here, and its text is free; the
            # address without it is the client's, and what limits and audit lines keep.
            address = ipaddress.IPv6Address(value.split("%", 1)[0])
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address
