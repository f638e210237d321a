"""The verifier against a live issuer: floods of unknown kids, and an issuer that goes away."""

import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from servicekit.processes import uvicorn
from tests.e2e.stack import PASSWORD, prepare, running_stack
from tests.support import b64url


def jwks_fetches(log_text: str) -> int:
    return log_text.count("GET /.well-known/jwks.json")


def with_random_kid(token: str) -> str:
    _header, payload, signature = token.split(".")
    forged = {"alg": "RS256", "typ": "at+jwt", "kid": secrets.token_urlsafe(12)}
    return f"{b64url(json.dumps(forged).encode())}.{payload}.{signature}"


def test_300_random_kids_in_10_seconds_cause_at_most_a_handful_of_fetches(tmp_path):
    with running_stack(tmp_path, access_log=True) as stack:
        token = stack.token()
        before = jwks_fetches(stack.issuer.log.read_text())
        statuses: list[int] = []
        with httpx.Client() as client, ThreadPoolExecutor(8) as pool:

            def call(forged: str) -> int:
                auth = {"Authorization": f"Bearer {forged}"}
                return client.get(f"{stack.rs_url}/users/me", headers=auth).status_code

            start = time.monotonic()
            for second in range(10):
                batch = [with_random_kid(token) for _ in range(30)]
                statuses += pool.map(call, batch)
                time.sleep(max(0.0, start + second + 1 - time.monotonic()))
        time.sleep(0.3)
        fetches = jwks_fetches(stack.issuer.log.read_text()) - before
        assert statuses == [401] * 300
        assert fetches <= 3, f"{fetches} JWKS fetches for 300 unknown kids"
        # The real token still works afterwards.
        assert stack.users_me(token).status_code == 200


@pytest.mark.parametrize("downtime", [4.0])
def test_stopping_the_issuer_fails_no_request_with_a_valid_token(tmp_path, downtime):
    # A one-second JWKS lifetime, so the cache expires many times during the outage.
    with running_stack(tmp_path, ISSUER_JWKS_MAX_AGE="1", RS_JWKS_MIN_TTL="1") as stack:
        token = stack.token()
        assert stack.users_me(token).status_code == 200
        stack.issuer.stop()
        statuses = []
        deadline = time.monotonic() + downtime
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client:
            while time.monotonic() < deadline:
                statuses.append(client.get(f"{stack.rs_url}/users/me").status_code)
                time.sleep(0.05)
        # Spread over the outage, across several expiries of the 1 s lifetime (even when a
        # loaded machine answers slowly, so no fixed rate is asked for).
        assert len(statuses) >= 10, statuses
        assert set(statuses) == {200}, statuses
        # The issuer comes back: the resource server recovers without help.
        stack.start_issuer("issuer-again.log")
        fresh = stack.token()
        assert stack.users_me(fresh).status_code == 200


def test_a_resource_server_started_before_the_issuer_answers_as_soon_as_it_is_up(tmp_path):
    # `make run` starts both at once; the resource server may well be first.
    env, issuer_port, rs_port = prepare(tmp_path)
    issuer_url, rs_url = f"http://127.0.0.1:{issuer_port}", f"http://127.0.0.1:{rs_port}"
    rs = uvicorn("resource_server.app:app", rs_port, env, tmp_path / "rs.log")
    issuer = None
    try:
        rs.wait_until_serving(f"{rs_url}/healthz")
        time.sleep(3)  # its fetches fail and its background retries back off meanwhile
        issuer = uvicorn("issuer.app:app", issuer_port, env, tmp_path / "issuer.log")
        issuer.wait_until_serving(f"{issuer_url}/healthz")
        up = time.monotonic()
        token = httpx.post(
            f"{issuer_url}/token", data={"username": "alice", "password": PASSWORD}
        ).json()["access_token"]
        me = httpx.get(f"{rs_url}/users/me", headers={"Authorization": f"Bearer {token}"})
        elapsed = time.monotonic() - up
        assert me.status_code == 200, me.text
        assert elapsed < 1.5, f"/users/me answered {elapsed:.2f} s after the issuer came up"
    finally:
        rs.stop()
        if issuer is not None:
            issuer.stop()
    log = rs.log.read_text()
    assert "no key set yet; retrying" in log
    assert "keeping the last good key set" not in log  # it had none to keep
