"""The verifier against a live issuer: floods of unknown kids, and an issuer that goes away."""

import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.stack import running_stack
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
        while time.monotonic() < deadline:
            statuses.append(stack.users_me(token).status_code)
            time.sleep(0.05)
        assert len(statuses) > 20
        assert set(statuses) == {200}
        # The issuer comes back: the resource server recovers without help.
        stack.start_issuer("issuer-again.log")
        fresh = stack.token()
        assert stack.users_me(fresh).status_code == 200
