"""`make run` as the README shows it: both services, the demo user, the curl flow, Ctrl-C."""

import re
import signal
import socket
import time
from pathlib import Path

import httpx

from servicekit.processes import Process, free_port


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_make_run_serves_the_readme_flow_and_ctrl_c_stops_both(tmp_path: Path):
    issuer_port, rs_port = free_port(), free_port()
    issuer_url = f"http://127.0.0.1:{issuer_port}"
    env = {
        "ISSUER_PORT": str(issuer_port),
        "RS_PORT": str(rs_port),
        # No ISSUER_URL or RS_ISSUER_URL: `make run` derives both from ISSUER_PORT (they
        # stayed at :8000, where the resource server then looked for keys in vain).
        "ISSUER_KEYS_DIR": str(tmp_path / "keys"),
        "ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}",
        "ISSUER_BCRYPT_ROUNDS": "4",
    }
    run = Process(["make", "--no-print-directory", "run"], env, tmp_path / "make-run.log")
    try:
        run.wait_until_serving(f"{issuer_url}/healthz", timeout=120)
        # Alive, not ready: the README's calls are made the moment both answer, before the
        # resource server has any keys (it fetches them for the caller, never waits them out).
        run.wait_until_serving(f"http://127.0.0.1:{rs_port}/healthz")
        # The README's two curl calls, made with httpx.
        token = httpx.post(
            f"{issuer_url}/token", data={"username": "johndoe", "password": "secret123"}
        ).json()["access_token"]
        me = httpx.get(
            f"http://127.0.0.1:{rs_port}/users/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert me.status_code == 200
        assert me.json()["username"] == "johndoe"
        # The resource server's Swagger UI signs in through the client `make run` registers.
        docs = httpx.get(
            f"{issuer_url}/authorize",
            params={
                "response_type": "code",
                "client_id": "api-docs",
                "redirect_uri": f"http://127.0.0.1:{rs_port}/docs/oauth2-redirect",
                "scope": "openid profile",
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
            },
        )
        assert docs.status_code == 200 and 'name="password"' in docs.text
        # The audit: 80 guesses with a random X-Forwarded-For each all got 400, none 429, and
        # the audit log recorded the forged addresses.
        statuses = [
            httpx.post(
                f"{issuer_url}/token",
                data={"username": "johndoe", "password": "a-guess-a-guess"},
                headers={"X-Forwarded-For": f"198.51.{n // 256}.{n % 256}"},
            ).status_code
            for n in range(80)
        ]
        assert statuses.count(429) >= 20, statuses
    finally:
        run.stop(signal.SIGINT)  # what Ctrl-C sends to the foreground process group
    deadline = time.monotonic() + 10
    while (port_open(issuer_port) or port_open(rs_port)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not port_open(issuer_port) and not port_open(rs_port)
    assert run.popen.returncode is not None
    log = run.log.read_text()
    assert "login failed username='johndoe' ip=127.0.0.1" in log
    assert "198.51." not in log


def test_make_run_stops_both_services_when_one_cannot_start(tmp_path: Path):
    # The audit: with the issuer's port taken, the issuer exited and `make run` went on with
    # the resource server alone, looking for keys at whatever held the port.
    issuer_port, rs_port = free_port(), free_port()
    env = {
        "ISSUER_PORT": str(issuer_port),
        "RS_PORT": str(rs_port),
        "ISSUER_KEYS_DIR": str(tmp_path / "keys"),
        "ISSUER_DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}",
        "ISSUER_BCRYPT_ROUNDS": "4",
    }
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", issuer_port))
        taken.listen()
        run = Process(["make", "--no-print-directory", "run"], env, tmp_path / "make-run.log")
        try:
            run.popen.wait(timeout=120)
        finally:
            run.stop()
    assert run.popen.returncode != 0
    deadline = time.monotonic() + 10  # the resource server's graceful shutdown
    while port_open(rs_port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not port_open(rs_port)
    log = run.log.read_text()
    assert "address already in use" in log
    assert re.search(r"one service stopped \(exit [1-9][0-9]*\), so the other stops too", log)
