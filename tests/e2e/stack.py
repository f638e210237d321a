"""A live issuer and resource server, started from the scripts as a user would."""

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from servicekit.processes import Process, free_port, granian, run_script, uvicorn

PASSWORD = "wonderland1"


@dataclass
class Stack:
    issuer_url: str
    rs_url: str
    env: dict[str, str]
    tmp: Path
    issuer: Process
    rs: Process
    issuer_port: int

    @property
    def keys_dir(self) -> Path:
        return self.tmp / "keys"

    def token(self, username: str = "alice", password: str = PASSWORD) -> str:
        response = httpx.post(
            f"{self.issuer_url}/token", data={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def users_me(self, token: str) -> httpx.Response:
        return httpx.get(f"{self.rs_url}/users/me", headers={"Authorization": f"Bearer {token}"})

    def active_private_key(self) -> tuple[str, rsa.RSAPrivateKey]:
        manifest = json.loads((self.keys_dir / "manifest.json").read_text())
        kid = next(k["kid"] for k in manifest["keys"] if k["state"] == "active")
        pem = (self.keys_dir / f"{kid}.pem").read_bytes()
        key = serialization.load_pem_private_key(pem, None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return kid, key

    def start_issuer(self, log_name: str = "issuer.log", access_log: bool = False) -> None:
        self.issuer = uvicorn(
            "issuer.app:app", self.issuer_port, self.env, self.tmp / log_name, access_log
        )
        self.issuer.wait_until_serving(f"{self.issuer_url}/healthz")


def prepare(tmp: Path, **overrides: str) -> tuple[dict[str, str], int, int]:
    """Keys and a user made by the scripts; the environment and ports of both services."""
    issuer_port, rs_port = free_port(), free_port()
    issuer_url = f"http://127.0.0.1:{issuer_port}"
    env = {
        "ISSUER_URL": issuer_url,
        "ISSUER_KEYS_DIR": str(tmp / "keys"),
        "ISSUER_DATABASE_URL": f"sqlite:///{tmp / 'issuer.db'}",
        "ISSUER_BCRYPT_ROUNDS": "4",
        "ISSUER_KEYS_POLL_INTERVAL": "0.2",
        # Every test client is 127.0.0.1: the per-IP limit would otherwise throttle the suite.
        "ISSUER_RATE_LIMIT_PER_IP": "100000",
        "RS_ISSUER_URL": issuer_url,
        # Narrow CORS, as `make run` sets it: the resource server's Swagger UI may call /token.
        "ISSUER_CORS_ORIGINS": f'["http://127.0.0.1:{rs_port}"]',
        **overrides,
    }
    generated = run_script("generate_keys.py", env=env)
    assert generated.returncode == 0, generated.stderr
    created = run_script(
        "create_user.py",
        "alice",
        "--scope",
        "profile",
        "--password-stdin",
        env=env,
        stdin=f"{PASSWORD}\n",
    )
    assert created.returncode == 0, created.stderr
    # As `make run` does: the resource server's API docs sign users in with PKCE.
    docs_client = run_script(
        "create_client.py",
        "api-docs",
        "--public",
        "--scope",
        "openid profile",
        "--redirect-uri",
        f"http://127.0.0.1:{rs_port}/docs/oauth2-redirect",
        env=env,
    )
    assert docs_client.returncode == 0, docs_client.stderr
    return env, issuer_port, rs_port


@contextlib.contextmanager
def running_stack(
    tmp: Path,
    access_log: bool = False,
    issuer_workers: int = 1,
    server: Literal["uvicorn", "granian"] = "uvicorn",
    **overrides: str,
) -> Iterator[Stack]:
    """Keys and a user made by the scripts, then both services (under uvicorn as `make run`
    starts them, or Granian as the Dockerfile and compose do); everything stopped after."""
    env, issuer_port, rs_port = prepare(tmp, **overrides)
    issuer_url = f"http://127.0.0.1:{issuer_port}"
    if server == "granian":
        issuer = granian("issuer.app:app", issuer_port, env, tmp / "issuer.log", issuer_workers)
        rs = granian("resource_server.app:app", rs_port, env, tmp / "rs.log")
    else:
        issuer = uvicorn(
            "issuer.app:app", issuer_port, env, tmp / "issuer.log", access_log, issuer_workers
        )
        rs = uvicorn("resource_server.app:app", rs_port, env, tmp / "rs.log")
    stack = Stack(issuer_url, f"http://127.0.0.1:{rs_port}", env, tmp, issuer, rs, issuer_port)
    try:
        issuer.wait_until_serving(f"{issuer_url}/healthz")
        rs.wait_until_serving(f"{stack.rs_url}/readyz", ready_only=True)
        yield stack
    finally:
        stack.rs.stop()
        stack.issuer.stop()
