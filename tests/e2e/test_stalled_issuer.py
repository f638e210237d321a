"""An issuer that stalls (its JWKS trickles a byte every 2 s) never stalls our callers."""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from servicekit.processes import Process, free_port, uvicorn
from tests.e2e.fake_issuer import FakeIssuer, fake_issuer

DEADLINE = 2.0  # RS_JWKS_TIMEOUT
SLACK = 1.0


def start_rs(issuer: FakeIssuer, log: Path, **env: str) -> tuple[Process, str]:
    port = free_port()
    base = {
        "RS_ISSUER_URL": issuer.url,
        "RS_JWKS_TIMEOUT": str(DEADLINE),
        "RS_JWKS_MIN_TTL": "1",  # the fake's max-age=1 is honoured: the set goes stale fast
        "RS_JWKS_COOLDOWN": "0",  # so an unknown kid really does ask the stalled issuer
    }
    return uvicorn(
        "resource_server.app:app", port, {**base, **env}, log
    ), f"http://127.0.0.1:{port}"


def timed_get(url: str, token: str | None = None) -> tuple[httpx.Response, float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    started = time.monotonic()
    response = httpx.get(url, headers=headers, timeout=60)
    return response, time.monotonic() - started


@pytest.fixture
def issuer(rsa_private_key: rsa.RSAPrivateKey) -> Iterator[FakeIssuer]:
    with fake_issuer(rsa_private_key) as issuer:
        yield issuer


def test_a_stalled_issuer_never_stalls_callers_holding_a_stale_set(issuer, tmp_path):
    rs, url = start_rs(issuer, tmp_path / "rs.log")
    try:
        rs.wait_until_serving(f"{url}/readyz", ready_only=True)
        assert timed_get(f"{url}/users/me", issuer.token())[0].status_code == 200
        issuer.trickling.set()
        time.sleep(1.2)  # past max-age: every refetch from now on trickles
        latencies = []
        for _ in range(12):  # about two and a half fetch deadlines
            # A new token each time: the key set, not the verified-token cache, must answer.
            response, took = timed_get(f"{url}/users/me", issuer.token())
            assert response.status_code == 200
            latencies.append(took)
            time.sleep(0.4)
        assert max(latencies) < 1, f"answered from the stale set in up to {max(latencies):.2f} s"
        # An unknown kid does wait for the issuer, but never past the deadline.
        response, took = timed_get(f"{url}/users/me", issuer.token(kid="rotated-in"))
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"
        assert took < DEADLINE + SLACK, f"unknown kid answered after {took:.2f} s"
        ready, took = timed_get(f"{url}/readyz")
        assert took < 1
        assert ready.status_code == 200
        assert ready.json()["keys"] == "stale"
        assert ready.json()["last_fetch_failed"] is True
    finally:
        rs.stop()
    assert f"no complete answer within {DEADLINE:g} s" in rs.log.read_text()


def test_with_no_keys_a_stalled_issuer_gets_callers_a_503_within_the_deadline(issuer, tmp_path):
    issuer.trickling.set()  # stalled from the start: not even the first fetch completes
    rs, url = start_rs(issuer, tmp_path / "rs.log")
    try:
        rs.wait_until_serving(f"{url}/healthz")
        response, took = timed_get(f"{url}/users/me", issuer.token())
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) >= 1
        assert "www-authenticate" not in response.headers
        assert took < DEADLINE + SLACK, f"503 after {took:.2f} s"
        ready, took = timed_get(f"{url}/readyz")
        assert took < 1
        assert ready.status_code == 503
        assert ready.json()["ready"] is False and ready.json()["keys"] == "none"
        # The issuer recovers: the next caller is answered without anyone restarting anything.
        issuer.trickling.clear()
        deadline = time.monotonic() + DEADLINE + SLACK + 1
        while (response := timed_get(f"{url}/users/me", issuer.token())[0]).status_code != 200:
            assert time.monotonic() < deadline, response.text
            time.sleep(0.2)
    finally:
        rs.stop()
