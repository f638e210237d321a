"""The services' log lines as run: no bearer token, even with uvicorn's access log on, and
the request id on every line."""

import json

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from servicekit.processes import free_port, uvicorn
from tests.e2e.fake_issuer import fake_issuer


def test_a_token_in_the_url_is_refused_and_never_logged(
    tmp_path, rsa_private_key: rsa.RSAPrivateKey
):
    with fake_issuer(rsa_private_key) as issuer:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        # Plain `uvicorn resource_server.app:app` with its access log on, as in production.
        rs = uvicorn(
            "resource_server.app:app",
            port,
            {"RS_ISSUER_URL": issuer.url, "RS_LOG_FORMAT": "text"},
            tmp_path / "rs.log",
            access_log=True,
        )
        token = issuer.token()
        try:
            rs.wait_until_serving(f"{url}/readyz", ready_only=True)
            in_query = httpx.get(f"{url}/users/me?access_token={token}")
            assert in_query.status_code == 400
            assert in_query.json()["error"] == "invalid_request"
            in_header = httpx.get(f"{url}/users/me", headers={"Authorization": f"Bearer {token}"})
            assert in_header.status_code == 200
            in_body = httpx.request("GET", f"{url}/users/me", data={"access_token": token})
            assert in_body.status_code == 400
        finally:
            rs.stop()
    lines = rs.log.read_text().splitlines()
    # The access log is on and saw every request...
    assert sum('"GET /users/me HTTP/1.1" 400' in line for line in lines) == 2
    assert sum('"GET /users/me HTTP/1.1" 200' in line for line in lines) == 1
    # ...and no line carries the token, nor any part of it.
    signature = token.rsplit(".", 1)[1]
    assert not [line for line in lines if token in line or signature in line]


def test_access_lines_are_the_services_own_lines_with_the_request_id(
    tmp_path, rsa_private_key: rsa.RSAPrivateKey
):
    with fake_issuer(rsa_private_key) as issuer:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        # A JWKS URL with a password in it: httpx would log it with every fetch.
        jwks = issuer.url.replace("http://", "http://jwks:pass-SECRET@") + "/.well-known/jwks.json"
        rs = uvicorn(
            "resource_server.app:app",
            port,
            {"RS_ISSUER_URL": issuer.url, "RS_JWKS_URL": jwks, "RS_LOG_FORMAT": "json"},
            tmp_path / "rs.log",
            access_log=True,
        )
        try:
            rs.wait_until_serving(f"{url}/readyz", ready_only=True)
            answer = httpx.get(f"{url}/users/me", headers={"X-Request-ID": "trace-42"})
            long_path = httpx.get(f"{url}/{'x' * 5000}")
        finally:
            rs.stop()
    assert answer.status_code == 401 and long_path.status_code == 404
    lines = rs.log.read_text().splitlines()
    # From the app's start on, every line is JSON, uvicorn's too (its first two, before the
    # app starts, are in its own format).
    first = next(n for n, line in enumerate(lines) if line.startswith("{"))
    events = [json.loads(line) for line in lines[first:]]
    access = [e for e in events if e["logger"] == "uvicorn.access"]
    assert [e["request_id"] for e in access if "/users/me" in e["message"]] == ["trace-42"]
    assert max(len(e["message"]) for e in access) < 400  # the 5,000-character path cut short
    assert not [line for line in lines if "pass-SECRET" in line]


def test_an_issuer_that_cannot_start_names_the_problem_at_the_end_of_its_error_line(tmp_path):
    # The audit: docs/configuration.md sent operators to the JSON line's `exception` field,
    # which this line does not have: uvicorn logs the traceback the app's lifespan reported
    # as the line's `message`.
    where = tmp_path / "a-file" / "issuer.db"
    (tmp_path / "a-file").touch()
    env = {"ISSUER_KEYS_DIR": str(tmp_path / "keys"), "ISSUER_DATABASE_URL": f"sqlite:///{where}"}
    issuer = uvicorn("issuer.app:app", free_port(), env, tmp_path / "issuer.log")
    try:
        assert issuer.popen.wait(30) == 3
    finally:
        issuer.stop()
    events = [json.loads(line) for line in issuer.log.read_text().splitlines() if line[:1] == "{"]
    failed = [e for e in events if e["level"] == "error" and "Traceback" in e["message"]]
    assert len(failed) == 1 and "exception" not in failed[0]
    cause = f"DatabaseFileError: cannot create the database {where}: Not a directory"
    assert failed[0]["message"].rstrip().endswith(cause)
