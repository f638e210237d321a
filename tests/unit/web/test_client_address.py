"""The client's address: the TCP peer, or what trusted proxies report, never a forged header."""

import tracemalloc

import pytest

from issuer.web.client_address import ClientAddresses, parse_networks


def scope(peer: str | None, *headers: tuple[str, str]) -> dict:
    return {
        "type": "http",
        "client": (peer, 50000) if peer else None,
        "headers": [(name.lower().encode(), value.encode("latin-1")) for name, value in headers],
    }


PROXY = "10.0.0.5"
TRUSTED = ClientAddresses(parse_networks([PROXY, "10.1.0.0/16"]))


def test_without_trusted_proxies_the_header_is_ignored():
    addresses = ClientAddresses()
    assert addresses.of(scope("203.0.113.7", ("X-Forwarded-For", "198.51.100.1"))) == "203.0.113.7"


def test_a_peer_that_is_not_a_trusted_proxy_cannot_report_an_address():
    forged = scope("203.0.113.7", ("X-Forwarded-For", "198.51.100.1"))
    assert TRUSTED.of(forged) == "203.0.113.7"


def test_behind_a_trusted_proxy_the_right_most_untrusted_address_is_the_client():
    # nginx appends the address it saw to whatever the client sent: the left part is forged.
    request = scope(PROXY, ("X-Forwarded-For", "1.2.3.4, 198.51.100.1"))
    assert TRUSTED.of(request) == "198.51.100.1"


def test_a_chain_of_trusted_proxies_is_skipped():
    request = scope(PROXY, ("X-Forwarded-For", "1.2.3.4, 198.51.100.1, 10.1.2.3"))
    assert TRUSTED.of(request) == "198.51.100.1"


def test_repeated_header_lines_form_one_list_in_order():
    request = scope(PROXY, ("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-For", "198.51.100.9"))
    assert TRUSTED.of(request) == "198.51.100.9"


@pytest.mark.parametrize("garbage", ["not-an-ip", "x" * (1024 * 1024), "999.1.1.1", ""])
def test_an_entry_that_is_not_an_address_ends_the_walk_at_the_hop_that_wrote_it(garbage):
    assert TRUSTED.of(scope(PROXY, ("X-Forwarded-For", garbage))) == PROXY
    chained = scope(PROXY, ("X-Forwarded-For", f"{garbage}, 10.1.0.7"))
    assert TRUSTED.of(chained) == "10.1.0.7"


def test_all_hops_trusted_gives_the_farthest_proxy():
    assert TRUSTED.of(scope(PROXY, ("X-Forwarded-For", "10.1.9.9"))) == "10.1.9.9"


def test_addresses_are_canonical():
    request = scope(PROXY, ("X-Forwarded-For", "2001:DB8:0:0::1"))
    assert TRUSTED.of(request) == "2001:db8::1"
    mapped = scope("::ffff:203.0.113.7")
    assert TRUSTED.of(mapped) == "203.0.113.7"
    with_port = scope(PROXY, ("X-Forwarded-For", "198.51.100.1:4711"))
    assert TRUSTED.of(with_port) == "198.51.100.1"
    # A zone is free text ("fe80::1%x ip=6.6.6.6" fits in 45 characters): never kept.
    zoned = scope(PROXY, ("X-Forwarded-For", "fe80::1%x ip=6.6.6.6"))
    assert TRUSTED.of(zoned) == "fe80::1"


def test_rfc7239_forwarded_is_read_when_configured():
    addresses = ClientAddresses(parse_networks([PROXY]), header="forwarded")
    request = scope(
        PROXY,
        ("Forwarded", 'for=1.2.3.4, for="[2001:db8::7]:4711";proto=https'),
        ("X-Forwarded-For", "5.6.7.8"),  # not the configured header: ignored
    )
    assert addresses.of(request) == "2001:db8::7"


def test_no_peer_is_unknown():
    assert TRUSTED.of(scope(None)) == "unknown"


def test_a_bad_trusted_proxy_entry_is_refused():
    with pytest.raises(ValueError, match="not an IP"):
        parse_networks(["proxy.internal"])


def test_a_trusted_range_written_with_host_bits_is_its_network():
    # "10.0.0.5/24" is how an interface's address is often written: the /24 is trusted.
    addresses = ClientAddresses(parse_networks([" 10.0.0.5/24 "]))
    assert addresses.of(scope("10.0.0.77", ("X-Forwarded-For", "198.51.100.1"))) == "198.51.100.1"


@pytest.mark.parametrize(
    ("entry", "proxy"),
    [("::ffff:10.0.0.5", "10.0.0.5"), ("::ffff:10.0.0.0/120", "10.0.0.77")],
)
def test_a_trusted_proxy_written_as_an_ipv4_mapped_address_is_that_ipv4_proxy(entry, proxy):
    # Peers are compared as IPv4 (a dual-stack socket reports "::ffff:10.0.0.5"): a setting
    # copied from such a log line must trust that proxy, as an operator would expect.
    addresses = ClientAddresses(parse_networks([entry]))
    for peer in (proxy, f"::ffff:{proxy}"):
        assert addresses.of(scope(peer, ("X-Forwarded-For", "198.51.100.1"))) == "198.51.100.1"
    assert addresses.of(scope("10.0.1.9", ("X-Forwarded-For", "198.51.100.1"))) == "10.0.1.9"


def test_rfc7239_for_is_found_among_other_parameters_and_its_absence_ends_the_walk():
    addresses = ClientAddresses(parse_networks([PROXY, "10.1.0.0/16"]), header="forwarded")
    later = scope(PROXY, ("Forwarded", "proto=https;For=198.51.100.1;by=10.0.0.5"))
    assert addresses.of(later) == "198.51.100.1"
    # A hop that names no client: the walk ends at the trusted proxy that wrote the element.
    nameless = scope(PROXY, ("Forwarded", "for=198.51.100.1, proto=https, for=10.1.0.7"))
    assert addresses.of(nameless) == "10.1.0.7"


def test_the_longest_textual_address_is_read_and_anything_longer_is_not():
    longest = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
    assert len(longest) == 45
    assert (
        TRUSTED.of(scope(PROXY, ("X-Forwarded-For", longest)))
        == "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    )
    zoned = "fe80::1%" + "x" * 38  # a zone makes it parse, at 46 characters
    assert TRUSTED.of(scope(PROXY, ("X-Forwarded-For", zoned))) == PROXY


def test_long_header_entries_are_not_remembered():
    # The review: every entry parsed was cached whole, and a client inside a trusted range
    # (its own entries are read) could fill the 4,096-entry cache with header-sized ones:
    # 60 kB entries held 245 MB. Short ones, as every address is, are still cached.
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(200):
            junk = f"{number:04d}" + "x" * 60_000
            assert TRUSTED.of(scope("10.1.2.3", ("X-Forwarded-For", junk))) == "10.1.2.3"
            del junk
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert retained < 1_000_000, retained  # not 200 x 60 kB = 12 MB
    assert TRUSTED.of(scope("10.1.2.3", ("X-Forwarded-For", " [2001:db8::1]:4711 "))) == (
        "2001:db8::1"
    )
