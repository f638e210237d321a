"""The key lifecycle model: states, waits and refusals, with explicit `now`."""

import json

import pytest

from issuer.keys.model import (
    JwksLifetime,
    KeyManifest,
    KeyRecord,
    KeySetError,
    KeyState,
    RotationPolicy,
    UnsafeRotation,
    format_timestamp,
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
        ("created_at", "32503680001"),
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


def test_the_status_times_say_when_a_next_key_may_sign_and_a_retiring_key_goes():
    # What `rotate_keys.py --status` shows in "may activate" and "retires".
    first = initial_manifest("a", "b", T0)
    assert first.get("b").may_activate_at(POLICY) == T0 + POLICY.publish_lead
    assert first.get("a").may_activate_at(POLICY) is None
    assert first.get("a").may_retire_at(POLICY) is None
    assert first.get("b").may_retire_at(POLICY) is None
    rotated = rotation_step(first, "c", T1 := T0 + 720, POLICY).manifest
    assert rotated.get("a").may_retire_at(POLICY) == T1 + POLICY.retire_after
    assert rotated.get("a").may_activate_at(POLICY) is None
    revoked = revocation(rotated, "a", "d", T1 + 1).manifest
    assert revoked.get("a").may_retire_at(POLICY) is None


def test_the_change_lines_name_each_move_and_when_the_next_step_may_follow():
    # `rotate_keys.py` prints these: the times are how an operator paces the next rotation.
    assert format_timestamp(T0) == "2027-01-15 08:00:00 UTC"
    with pytest.raises(UnsafeRotation) as refused:
        rotation_step(initial_manifest("a", "b", T0), "c", T0 + 719, POLICY)
    assert str(refused.value) == (
        "next key b has been published for 719 s; "
        "verifiers may not hold it until it has been published for 720 s"
    )
    step = rotation_step(initial_manifest("a", "b", T0), "c", T1 := T0 + 720, POLICY)
    until = format_timestamp(T1 + POLICY.retire_after)
    ready = format_timestamp(T1 + POLICY.publish_lead)
    assert step.changes == (
        f"a: active -> retiring (published until {until})",
        "b: next -> active (signs from now)",
        f"c: new next key (may activate from {ready})",
    )
    later = rotation_step(step.manifest, "d", T2 := T1 + POLICY.retire_after, POLICY)
    assert later.changes[0] == "a: retiring -> retired (removed from the JWKS)"
    legacy = KeyManifest((KeyRecord("a", KeyState.ACTIVE, T0, activated_at=T0),))
    assert rotation_step(legacy, "b", T2, POLICY).changes == (
        f"publish b as next (may activate from {format_timestamp(T2 + POLICY.publish_lead)})",
    )
    assert revocation(initial_manifest("a", "b", T0), "a", "c", T0).changes == (
        "a: active -> retired (revoked; removed from the JWKS now)",
        "b: next -> active (replaces the revoked key)",
        "c: new next key",
    )
    assert revocation(legacy, "a", "b", T0).changes == (
        "a: active -> retired (revoked; removed from the JWKS now)",
        "b: new active key (replaces the revoked key)",
    )


def test_revoking_the_next_key_publishes_a_new_next_key_and_keeps_the_active_one():
    step = revocation(initial_manifest("a", "b", T0), "b", "c", T0 + 1)
    assert states(step.manifest) == {
        "a": KeyState.ACTIVE,
        "b": KeyState.RETIRED,
        "c": KeyState.NEXT,
    }
    assert step.new_kid == "c"
    assert step.manifest.get("c").created_at == T0 + 1


def test_revoking_the_only_key_of_a_set_without_a_next_key_makes_a_new_active_key_at_once():
    legacy = KeyManifest((KeyRecord("a", KeyState.ACTIVE, T0, activated_at=T0),))
    step = revocation(legacy, "a", "b", T0 + 5)
    assert states(step.manifest) == {"a": KeyState.RETIRED, "b": KeyState.ACTIVE}
    assert step.new_kid == "b"
    assert step.manifest.get("b").activated_at == T0 + 5


def test_a_next_key_promoted_by_a_revocation_is_activated_now():
    step = revocation(initial_manifest("a", "b", T0), "a", "c", T0 + 7)
    assert step.manifest.get("b").activated_at == T0 + 7
    assert step.manifest.get("a").retired_at == T0 + 7


def test_only_a_revocation_shortens_the_jwks_lifetime_and_the_latest_one_counts():
    first = rotation_step(initial_manifest("a", "b", T0), "c", T1 := T0 + 720, POLICY).manifest
    # A key that retired on schedule: no cache can still hold a token it signed.
    retired = rotation_step(first, "d", T2 := T1 + POLICY.retire_after, POLICY).manifest
    assert retired.get("a").retired_at == T2
    assert jwks_lifetime(retired, T2, max_age=600, after_revocation=60) == JwksLifetime(600, None)
    # Two revocations: the window runs from the later one.
    once = revocation(retired, "b", "e", T2 + 100).manifest
    twice = revocation(once, "d", "f", T2 + 300).manifest
    assert jwks_lifetime(twice, T2 + 300, max_age=600, after_revocation=60) == JwksLifetime(
        60, T2 + 900
    )


def test_every_state_and_time_round_trips_through_json():
    first = rotation_step(initial_manifest("a", "b", T0), "c", T1 := T0 + 720, POLICY).manifest
    second = rotation_step(first, "d", T1 + POLICY.retire_after, POLICY).manifest
    manifest = revocation(second, "d", "e", T1 + POLICY.retire_after + 1).manifest
    assert {k.state for k in manifest.keys} == set(KeyState)
    assert manifest.get("b").retiring_at is not None
    assert KeyManifest.from_json(manifest.to_json()) == manifest


@pytest.mark.parametrize("field", ["retiring_at", "retired_at"])
@pytest.mark.parametrize("value", [-1, 10**30, 1.5])
def test_a_retiring_or_retired_time_no_date_can_hold_is_a_key_set_error(field, value):
    manifest = rotation_step(initial_manifest("a", "b", T0), "c", T0 + 720, POLICY).manifest
    doc = json.loads(manifest.to_json())
    doc["keys"][0][field] = value
    with pytest.raises(KeySetError, match=field):
        KeyManifest.from_json(json.dumps(doc).encode())


@pytest.mark.parametrize("kid", [1, "", None])
def test_a_manifest_kid_that_is_no_string_is_a_key_set_error(kid):
    # A whole record but for the kid: refused for the kid, not for a missing field.
    record = {"kid": kid, "state": "active", "created_at": T0, "activated_at": T0}
    with pytest.raises(KeySetError, match="kid"):
        KeyManifest.from_json(json.dumps({"keys": [record]}).encode())


def test_a_manifest_without_keys_is_a_key_set_error():
    with pytest.raises(KeySetError, match="unreadable"):
        KeyManifest.from_json(b'{"version": 1}')


def test_a_record_from_before_revocations_existed_is_not_revoked():
    record = {"kid": "a", "state": "active", "created_at": T0, "activated_at": T0}
    manifest = KeyManifest.from_json(json.dumps({"version": 1, "keys": [record]}).encode())
    assert manifest.get("a").revoked is False


@pytest.mark.parametrize("value", [0, 32_503_680_000])
def test_manifest_times_from_1970_up_to_the_year_3000_are_kept(value):
    manifest = initial_manifest("a", "b", value)
    assert KeyManifest.from_json(manifest.to_json()) == manifest
