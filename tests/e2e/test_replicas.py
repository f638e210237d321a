"""Two issuer replicas on PostgreSQL and Redis with the database key store, one resource server.

The replicas trust 127.0.0.1 as their proxy (as compose trusts nginx), so a test speaks for
different client addresses with X-Forwarded-For, the way the proxy reports them.
"""

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest
from sqlalchemy import create_engine, text

from servicekit.processes import Process, free_port, run_script, uvicorn
from tests.conftest import POSTGRES_URL, postgres_schema_url
from tests.support import REDIS_URL
from tests.unit.oidc.flow import Pkce, authorize_url, callback_params, sign_in

PASSWORD = "wonderland1"
BROWSER_APP = "https://app.example/cb"


@dataclass
class Cluster:
    issuers: list[str]
    rs_url: str
    env: dict[str, str]
    secrets: dict[str, str]
    logs: list[Path]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("replicas")
    schema_name = f"e2e_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema_name}"'))
    ports = [free_port(), free_port()]
    rs_port = free_port()
    public_url = f"http://127.0.0.1:{ports[0]}"  # the one `iss` both replicas sign with
    env = {
        "ISSUER_URL": public_url,
        "ISSUER_DATABASE_URL": postgres_schema_url(schema_name),
        "ISSUER_KEYS_BACKEND": "database",
        "ISSUER_KEYS_PASSPHRASE": "e2e passphrase, not a real one",
        "ISSUER_REDIS_URL": REDIS_URL,
        "ISSUER_REDIS_PREFIX": f"e2e:{schema_name}:",
        "ISSUER_BCRYPT_ROUNDS": "4",
        "ISSUER_KEYS_POLL_INTERVAL": "1",
        "ISSUER_RATE_LIMIT_PER_IP": "100000",
        "ISSUER_RATE_LIMIT_PER_CLIENT": "30",
        "RS_ISSUER_URL": public_url,
        # Keys are fetched from the second replica: either serves the shared set.
        "RS_JWKS_URL": f"http://127.0.0.1:{ports[1]}/.well-known/jwks.json",
        "RS_JWKS_COOLDOWN": "0",
        "ISSUER_TRUSTED_PROXIES": "127.0.0.1",
    }
    processes: list[Process] = []
    try:
        for script, args, stdin in [
            ("migrate.py", (), ""),
            ("generate_keys.py", (), ""),
            (
                "create_user.py",
                ("alice", "--scope", "profile", "--password-stdin"),
                PASSWORD + "\n",
            ),
        ]:
            result = run_script(script, *args, env=env, stdin=stdin)
            assert result.returncode == 0, result.stderr
        secrets = {}
        for client_id, extra in [
            ("racer", ["--public", "--grant", "password", "--grant", "refresh_token"]),
            ("gateway", ["--grant", "client_credentials", "--resource-server", "api"]),
            ("reports", ["--grant", "client_credentials"]),
            (
                "browser-app",
                ["--public", "--redirect-uri", BROWSER_APP, "--scope", "openid profile"],
            ),
        ]:
            result = run_script("create_client.py", client_id, *extra, env=env)
            assert result.returncode == 0, result.stderr
            secrets[client_id] = result.stdout.splitlines()[-1]
        for client_id in ("app", "limited"):
            result = run_script(
                "create_client.py",
                client_id,
                "--grant",
                "password",
                "--grant",
                "refresh_token",
                "--grant",
                "client_credentials",
                "--scope",
                "profile",
                env=env,
            )
            assert result.returncode == 0, result.stderr
            secrets[client_id] = result.stdout.splitlines()[-1]
        for index, port in enumerate(ports):
            processes.append(uvicorn("issuer.app:app", port, env, tmp / f"issuer{index}.log"))
        processes.append(uvicorn("resource_server.app:app", rs_port, env, tmp / "rs.log"))
        for port in ports:
            processes[0].wait_until_serving(f"http://127.0.0.1:{port}/healthz")
        rs_url = f"http://127.0.0.1:{rs_port}"
        processes[-1].wait_until_serving(f"{rs_url}/readyz", ready_only=True)
        yield Cluster(
            [f"http://127.0.0.1:{p}" for p in ports],
            rs_url,
            env,
            secrets,
            [tmp / f"issuer{index}.log" for index in range(len(ports))],
        )
    finally:
        for process in processes:
            process.stop()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema_name}" CASCADE'))
        admin.dispose()


def plain_login(cluster: Cluster, replica: int) -> str:
    """The tutorial's form, no client: not subject to the per-client limit."""
    response = httpx.post(
        f"{cluster.issuers[replica]}/token", data={"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def password_login(cluster: Cluster, replica: int, client_id: str = "app") -> httpx.Response:
    return httpx.post(
        f"{cluster.issuers[replica]}/token",
        data={
            "grant_type": "password",
            "username": "alice",
            "password": PASSWORD,
            "scope": "profile",
        },
        auth=(client_id, cluster.secrets[client_id]),
    )


def users_me(cluster: Cluster, token: str) -> httpx.Response:
    return httpx.get(f"{cluster.rs_url}/users/me", headers={"Authorization": f"Bearer {token}"})


def test_tokens_from_either_replica_verify(cluster):
    for replica in (0, 1):
        token = password_login(cluster, replica).json()["access_token"]
        assert users_me(cluster, token).status_code == 200


def test_a_rotation_reaches_both_replicas_within_2_seconds(cluster):
    before = pyjwt.get_unverified_header(plain_login(cluster, 0))["kid"]
    result = run_script("rotate_keys.py", "--force", env=cluster.env)
    assert result.returncode == 0, result.stderr
    rotated_at = time.monotonic()
    seen: dict[int, float] = {}
    while len(seen) < 2 and time.monotonic() - rotated_at < 5:
        for replica in (0, 1):
            token = plain_login(cluster, replica)
            if replica not in seen and pyjwt.get_unverified_header(token)["kid"] != before:
                seen[replica] = time.monotonic() - rotated_at
                assert users_me(cluster, token).status_code == 200
        time.sleep(0.1)
    assert set(seen) == {0, 1}
    assert max(seen.values()) < 2.0, seen


def test_a_refresh_token_from_one_replica_is_redeemed_at_the_other(cluster):
    tokens = password_login(cluster, 0).json()
    response = httpx.post(
        f"{cluster.issuers[1]}/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=("app", cluster.secrets["app"]),
    )
    assert response.status_code == 200, response.text
    assert users_me(cluster, response.json()["access_token"]).status_code == 200


def test_concurrent_refresh_of_one_token_at_both_replicas_lets_one_win(cluster):
    token = password_login(cluster, 0).json()["refresh_token"]

    def redeem(replica: int) -> int:
        return httpx.post(
            f"{cluster.issuers[replica]}/token",
            data={"grant_type": "refresh_token", "refresh_token": token},
            auth=("app", cluster.secrets["app"]),
        ).status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(redeem, [0, 1, 0, 1]))
    assert statuses == [200, 400, 400, 400]


def test_a_revocation_at_one_replica_is_seen_by_introspection_at_the_other(cluster):
    token = password_login(cluster, 0).json()["access_token"]
    auth = ("app", cluster.secrets["app"])
    assert (
        httpx.post(f"{cluster.issuers[0]}/revoke", data={"token": token}, auth=auth).status_code
        == 200
    )
    introspected = httpx.post(f"{cluster.issuers[1]}/introspect", data={"token": token}, auth=auth)
    assert introspected.json() == {"active": False}


def test_the_rate_limit_spans_both_replicas(cluster):
    statuses = []
    for attempt in range(34):
        response = httpx.post(
            f"{cluster.issuers[attempt % 2]}/token",
            data={"grant_type": "client_credentials"},
            auth=("limited", cluster.secrets["limited"]),
        )
        statuses.append(response.status_code)
    assert statuses == [200] * 30 + [429] * 4


# -- the outside audit's live scenarios ----------------------------------------------------


def redis_keys(prefix: str) -> list[bytes]:
    import redis

    with redis.Redis.from_url(REDIS_URL) as client:
        return list(client.scan_iter(match=f"{prefix}*"))


def test_a_replay_racing_a_rotation_across_replicas_never_leaves_a_live_successor(cluster):
    def refresh(replica: int, token: str) -> httpx.Response:
        return httpx.post(
            f"{cluster.issuers[replica]}/token",
            data={"grant_type": "refresh_token", "refresh_token": token, "client_id": "racer"},
        )

    for _ in range(20):
        login = httpx.post(
            f"{cluster.issuers[0]}/token",
            data={"username": "alice", "password": PASSWORD, "client_id": "racer"},
        )
        rt0 = login.json()["refresh_token"]
        rt1 = refresh(0, rt0).json()["refresh_token"]
        with ThreadPoolExecutor(2) as pool:
            rotation, replay = pool.map(lambda args: refresh(*args), [(0, rt1), (1, rt0)])
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        if rotation.status_code == 200:  # the rotation won: its successor died with the family
            assert refresh(1, rotation.json()["refresh_token"]).status_code == 400
        assert refresh(0, rt1).status_code == 400


def test_a_revoked_token_stays_revoked_when_redis_forgets_everything(cluster):
    token = password_login(cluster, 0).json()["access_token"]
    auth = ("app", cluster.secrets["app"])
    assert httpx.post(f"{cluster.issuers[0]}/revoke", data={"token": token}, auth=auth).is_success
    import redis

    with redis.Redis.from_url(REDIS_URL) as client:  # a Redis restart
        for key in redis_keys(cluster.env["ISSUER_REDIS_PREFIX"]):
            client.delete(key)
    for replica in (0, 1):
        answer = httpx.post(
            f"{cluster.issuers[replica]}/introspect", data={"token": token}, auth=auth
        )
        assert answer.json() == {"active": False}


def test_a_wrong_secret_flood_naming_a_client_locks_out_the_flooder_only(cluster):
    statuses = [
        httpx.post(
            f"{cluster.issuers[attempt % 2]}/token",
            data={"grant_type": "client_credentials"},
            auth=("reports", "not-the-secret"),
            headers={"X-Forwarded-For": "203.0.113.66"},
        ).status_code
        for attempt in range(60)
    ]
    # The failure cap spans both replicas (Redis): 10 refusals, then the address is locked.
    assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}
    real = httpx.post(
        f"{cluster.issuers[0]}/token",
        data={"grant_type": "client_credentials"},
        auth=("reports", cluster.secrets["reports"]),
        headers={"X-Forwarded-For": "192.0.2.10"},
    )
    assert real.status_code == 200, real.text


def test_a_forged_address_behind_the_proxy_is_not_what_the_audit_log_records(cluster, tmp_path):
    for _ in range(3):
        httpx.post(
            f"{cluster.issuers[0]}/token",
            data={"username": "alice", "password": "not-it-at-all"},
            headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.23"},
        )
    logs = "".join(path.read_text() for path in cluster.logs)
    assert "198.51.100.23" in logs and "6.6.6.6" not in logs


def test_only_the_resource_server_of_the_audience_learns_a_token_is_active(cluster):
    token = plain_login(cluster, 0)  # alice's token for audience "api"

    def introspect(client_id: str) -> dict:
        return httpx.post(
            f"{cluster.issuers[1]}/introspect",
            data={"token": token},
            auth=(client_id, cluster.secrets[client_id]),
        ).json()

    assert introspect("gateway")["active"] is True  # registered --resource-server api
    assert introspect("reports") == {"active": False}
    assert introspect("limited") == {"active": False}


# -- browser sign-in across replicas ---------------------------------------------------------


async def test_a_code_from_one_replica_is_redeemed_at_the_other(cluster):
    pkce = Pkce()
    async with httpx.AsyncClient(base_url=cluster.issuers[0]) as one:
        url = authorize_url("browser-app", BROWSER_APP, pkce)
        code = callback_params(await sign_in(one, url, "alice", PASSWORD))["code"]
    async with httpx.AsyncClient(base_url=cluster.issuers[1]) as other:
        tokens = await other.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": BROWSER_APP,
                "code_verifier": pkce.verifier,
                "client_id": "browser-app",
            },
        )
    assert tokens.status_code == 200, tokens.text
    assert users_me(cluster, tokens.json()["access_token"]).status_code == 200


async def test_a_session_made_at_one_replica_is_seen_by_the_other(cluster):
    async with httpx.AsyncClient(base_url=cluster.issuers[0]) as one:
        await sign_in(one, authorize_url("browser-app", BROWSER_APP, Pkce()), "alice", PASSWORD)
        async with httpx.AsyncClient(base_url=cluster.issuers[1], cookies=one.cookies) as other:
            again = await other.get(authorize_url("browser-app", BROWSER_APP, Pkce()))
    assert again.status_code == 302 and "code=" in again.headers["location"]
