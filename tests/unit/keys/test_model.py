"""The key lifecycle model: states, waits and refusals, with explicit `now`."""

import pytest

from issuer.keys.model import (
    JwksLifetime,
    KeyManifest,
    KeyRecord,
    KeySetError,
    KeyState,
    RotationPolicy,
    UnsafeRotation,
    initial_manifest,
    jwks_lifetime,
    revocation,
    rotation_step,
)

POLICY = RotationPolicy(access_token_ttl=900, jwks_max_age=600, leeway=120)
T0 = 1_800_000_000


def states(manifest: KeyManifest) -> dict[str, KeyState]:
    return {k.kid: k.state for k in manifest.keys}


def test_waits_follow_ttl_max_age_and_leeway():
    assert POLICY.publish_lead == 600 + 120
    assert POLICY.retire_after == 900 + 600 + 120


def test_initial_set_has_an_active_and_a_published_next_key():
    manifest = initial_manifest("a", "b", T0)
    assert states(manifest) == {"a": KeyState.ACTIVE, "b": KeyState.NEXT}
    assert {k.kid for k in manifest.published} == {"a", "b"}


def test_rotation_before_the_next_key_is_old_enough_is_refused_with_the_safe_time():
    manifest = initial_manifest("a", "b", T0)
    with pytest.raises(UnsafeRotation) as caught:
        rotation_step(manifest, "c", T0 + POLICY.publish_lead - 1, POLICY)
    assert caught.value.safe_at == T0 + POLICY.publish_lead


def test_rotation_moves_every_key_one_state_on():
    manifest = initial_manifest("a", "b", T0)
    now = T0 + POLICY.publish_lead
    step = rotation_step(manifest, "c", now, POLICY)
    assert states(step.manifest) == {
        "a": KeyState.RETIRING,
        "b": KeyState.ACTIVE,
        "c": KeyState.NEXT,
    }
    assert step.manifest.get("a").retiring_at == now
    assert step.manifest.get("b").activated_at == now
    assert step.new_kid == "c"
    assert len(step.changes) == 3


def test_force_rotates_despite_the_wait():
    step = rotation_step(initial_manifest("a", "b", T0), "c", T0 + 1, POLICY, force=True)
    assert step.manifest.active.kid == "b"


def test_retiring_key_stays_published_until_ttl_max_age_and_leeway_have_passed():
    first = rotation_step(initial_manifest("a", "b", T0), "c", T1 := T0 + 720, POLICY).manifest
    early = rotation_step(first, "d", T1 + POLICY.retire_after - 1, POLICY).manifest
    assert early.get("a").state is KeyState.RETIRING
    late = rotation_step(first, "d", T1 + POLICY.retire_after, POLICY).manifest
    assert late.get("a").state is KeyState.RETIRED
    assert "a" not in {k.kid for k in late.published}


def test_a_set_without_a_next_key_first_gets_one_published():
    legacy = KeyManifest((KeyRecord("a", KeyState.ACTIVE, T0, activated_at=T0),))
    step = rotation_step(legacy, "b", T0 + 5, POLICY)
    assert states(step.manifest) == {"a": KeyState.ACTIVE, "b": KeyState.NEXT}


def test_revoking_the_active_key_promotes_next_at_once_and_refills():
    step = revocation(initial_manifest("a", "b", T0), "a", "c", T0 + 1)
    assert states(step.manifest) == {
        "a": KeyState.RETIRED,
        "b": KeyState.ACTIVE,
        "c": KeyState.NEXT,
    }
    assert step.manifest.get("a").revoked


def test_revoking_a_retiring_key_creates_nothing():
    rotated = rotation_step(initial_manifest("a", "b", T0), "c", T0 + 720, POLICY).manifest
    step = revocation(rotated, "a", "d", T0 + 721)
    assert step.new_kid is None
    assert states(step.manifest)["a"] is KeyState.RETIRED


def test_revoking_an_unknown_or_retired_key_is_an_error():
    manifest = initial_manifest("a", "b", T0)
    with pytest.raises(KeySetError, match="no key"):
        revocation(manifest, "zzz", "c", T0)
    revoked = revocation(manifest, "b", "c", T0).manifest
    with pytest.raises(KeySetError, match="already retired"):
        revocation(revoked, "b", "d", T0)


@pytest.mark.parametrize(
    "records",
    [
        (),
        (KeyRecord("a", KeyState.NEXT, T0),),
        (KeyRecord("a", KeyState.ACTIVE, T0), KeyRecord("b", KeyState.ACTIVE, T0)),
        (
            KeyRecord("a", KeyState.ACTIVE, T0),
            KeyRecord("b", KeyState.NEXT, T0),
            KeyRecord("c", KeyState.NEXT, T0),
        ),
        (KeyRecord("a", KeyState.ACTIVE, T0), KeyRecord("a", KeyState.RETIRING, T0)),
    ],
    ids=["empty", "no-active", "two-active", "two-next", "duplicate-kid"],
)
def test_manifest_invariants_are_enforced(records):
    with pytest.raises(KeySetError):
        KeyManifest(records)


def test_manifest_round_trips_through_json():
    manifest = revocation(initial_manifest("a", "b", T0), "a", "c", T0 + 3).manifest
    assert KeyManifest.from_json(manifest.to_json()) == manifest


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b'{"keys": [{"kid": 1}]}'])
def test_unreadable_manifest_is_a_key_set_error(data):
    with pytest.raises(KeySetError):
        KeyManifest.from_json(data)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("created_at", "Infinity"),
        ("created_at", "1e300"),
        ("created_at", "-Infinity"),
        ("created_at", "NaN"),
        ("created_at", "1800000000.5"),
        ("created_at", '"1800000000"'),
        ("created_at", "true"),
        ("created_at", "-1"),
        ("created_at", str(10**30)),
        ("activated_at", "1e300"),
    ],
)
def test_a_manifest_time_no_date_can_hold_is_a_key_set_error(field, value):
    # The audit: Infinity and 1e300 raised OverflowError, which the key watcher and
    # `rotate_keys.py --status` do not treat as a broken key set.
    data = (
        initial_manifest("a", "b", T0)
        .to_json()
        .replace(f'"{field}": {T0}'.encode(), f'"{field}": {value}'.encode(), 1)
    )
    assert data != initial_manifest("a", "b", T0).to_json()
    with pytest.raises(KeySetError, match=field):
        KeyManifest.from_json(data)


@pytest.mark.parametrize("value", ['"false"', "0", "null"])
def test_revoked_must_be_a_json_boolean(value):
    # bool("false") is True: a hand-edited "false" marked the key revoked.
    data = (
        initial_manifest("a", "b", T0)
        .to_json()
        .replace(b'"revoked": false', f'"revoked": {value}'.encode(), 1)
    )
    with pytest.raises(KeySetError, match="revoked"):
        KeyManifest.from_json(data)


def test_the_jwks_lifetime_is_short_for_one_max_age_after_a_revocation():
    manifest = initial_manifest("a" * 43, "b" * 43, now=1000)
    assert jwks_lifetime(manifest, 5000, max_age=600, after_revocation=60) == JwksLifetime(
        600, None
    )
    revoked = revocation(manifest, "a" * 43, "c" * 43, now=5000).manifest
    # Short until one max-age has passed, and the answer says when that is.
    assert jwks_lifetime(revoked, 5000, max_age=600, after_revocation=60) == JwksLifetime(60, 5600)
    assert jwks_lifetime(revoked, 5599, max_age=600, after_revocation=60) == JwksLifetime(60, 5600)
    assert jwks_lifetime(revoked, 5600, max_age=600, after_revocation=60) == JwksLifetime(600, None)
    assert jwks_lifetime(revoked, 5000, max_age=30, after_revocation=60) == JwksLifetime(30, 5030)
