"""The verified-token cache: a bounded dictionary that forgets its oldest entries first."""

from resource_server.token_cache import VerifiedTokens


def filled(size: int, count: int) -> VerifiedTokens[int]:
    cache: VerifiedTokens[int] = VerifiedTokens(size)
    for i in range(count):
        cache.put(f"token-{i}", i)
    return cache


def test_put_then_get_returns_the_entry_and_unknown_tokens_miss():
    cache = filled(10, 3)
    assert cache.get("token-1") == 1
    assert cache.get("token-9") is None
    assert len(cache) == 3


def test_drop_forgets_a_token_and_ignores_unknown_ones():
    cache = filled(10, 3)
    cache.drop("token-1")
    cache.drop("never-stored")
    assert cache.get("token-1") is None
    assert len(cache) == 2


def test_size_zero_disables_the_cache():
    cache = filled(0, 5)
    assert len(cache) == 0
    assert cache.get("token-0") is None


def test_the_cache_never_holds_more_than_its_size():
    cache: VerifiedTokens[int] = VerifiedTokens(16)
    for i in range(200):
        cache.put(f"token-{i}", i)
        assert len(cache) <= 16
    assert cache.get("token-199") == 199


def test_a_full_cache_drops_its_oldest_eighth_to_make_room():
    cache = filled(16, 16)
    cache.put("newest", 99)
    assert [cache.get(f"token-{i}") for i in range(3)] == [None, None, 2]
    assert cache.get("newest") == 99
    assert len(cache) == 15


def test_a_small_full_cache_drops_at_least_its_oldest_entry():
    cache = filled(3, 4)
    assert cache.get("token-0") is None
    assert [cache.get(f"token-{i}") for i in (1, 2, 3)] == [1, 2, 3]


def test_putting_an_existing_token_again_replaces_it_without_growing():
    cache = filled(10, 3)
    cache.put("token-1", 100)
    assert len(cache) == 3
    assert cache.get("token-1") == 100


def test_putting_an_existing_token_into_a_full_cache_does_not_grow_it():
    cache = filled(8, 8)
    cache.put("token-7", 70)
    assert len(cache) <= 8
    assert cache.get("token-7") == 70


def test_a_cache_of_one_entry_holds_the_latest_token():
    cache = filled(1, 2)
    assert (cache.get("token-0"), cache.get("token-1"), len(cache)) == (None, 1, 1)


def test_a_large_full_cache_drops_exactly_its_oldest_eighth():
    cache = filled(64, 64)
    cache.put("newest", 99)
    assert [cache.get(f"token-{i}") for i in (7, 8)] == [None, 8]
    assert len(cache) == 64 - 8 + 1
