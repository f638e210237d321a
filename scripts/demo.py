"""`make demo`: the whole story, narrated, on a temporary keys dir and database.

Create a user, get a token, call /users/me, rotate keys, show old and new tokens both
verifying, revoke the old key, show the old token's 401. Nothing outside a temp dir changes.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

from issuer.admin import run
from resource_server.base64url import b64url_decode
from servicekit.processes import free_port, run_script, started

PASSWORD = "demo-password-1"


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def show(label: str, response: httpx.Response) -> None:
    try:
        body = json.dumps(response.json())
    except ValueError:
        body = response.text
    print(f"   {label}: HTTP {response.status_code} {body[:160]}", flush=True)


def script(env: dict[str, str], name: str, *args: str, stdin: str = "") -> str:
    result = run_script(name, *args, env=env, stdin=stdin)
    if result.returncode not in (0, 3):
        raise SystemExit(f"{name} failed: {result.stderr}")
    return result.stdout


def kid_of(token: str) -> str:
    return str(json.loads(b64url_decode(token.split(".")[0]))["kid"])


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)  # --help, and no stray flags
    # The caller's settings of the services stay out (a Redis, an audience, a URL): the
    # scripts and services below inherit this environment, and the story has its own.
    for name in [name for name in os.environ if name.startswith(("ISSUER_", "RS_"))]:
        del os.environ[name]
    with tempfile.TemporaryDirectory(prefix="oauth-demo-") as tmp:
        issuer_port, rs_port = free_port(), free_port()
        issuer_url = f"http://127.0.0.1:{issuer_port}"
        env = {
            "ISSUER_URL": issuer_url,
            "RS_ISSUER_URL": issuer_url,
            "ISSUER_KEYS_DIR": f"{tmp}/keys",
            "ISSUER_DATABASE_URL": f"sqlite:///{tmp}/demo.db",
            # Short waits so the story takes seconds: JWKS max-age 1 s, rotation leeway 1 s.
            "ISSUER_JWKS_MAX_AGE": "1",
            "ISSUER_ROTATION_LEEWAY": "1",
            "RS_JWKS_MIN_TTL": "1",
            "ISSUER_KEYS_POLL_INTERVAL": "0.2",
            "ISSUER_BCRYPT_ROUNDS": "4",
            "ISSUER_LOG_FORMAT": "text",
            "RS_LOG_FORMAT": "text",
        }
        say(f"Keys and a user, made by the scripts (in {tmp})")
        print(script(env, "generate_keys.py"), end="")
        print(
            script(
                env,
                "create_user.py",
                "ada",
                "--scope",
                "profile",
                "--password-stdin",
                stdin=PASSWORD + "\n",
            ),
            end="",
        )
        with (
            started("issuer.app:app", env, issuer_port, Path(tmp, "issuer.log")),
            started("resource_server.app:app", env, rs_port, Path(tmp, "rs.log")) as (rs, _),
        ):
            say("Log in: POST /token with the tutorial's form")
            login = httpx.post(
                f"{issuer_url}/token", data={"username": "ada", "password": PASSWORD}
            )
            show("token", login)
            old = login.json()["access_token"]
            say("Call the resource server with it")
            show(
                "GET /users/me",
                httpx.get(f"{rs}/users/me", headers={"Authorization": f"Bearer {old}"}),
            )

            say("Rotate keys: the pre-published next key starts signing")
            time.sleep(2.5)  # the next key has been published for max-age + leeway
            print(script(env, "rotate_keys.py"), end="")
            print(script(env, "rotate_keys.py", "--status"), end="")
            time.sleep(1)
            new = httpx.post(
                f"{issuer_url}/token", data={"username": "ada", "password": PASSWORD}
            ).json()["access_token"]
            print(f"   old token kid {kid_of(old)}\n   new token kid {kid_of(new)}")
            say("Both tokens verify: the retiring key stays published")
            show(
                "old token", httpx.get(f"{rs}/users/me", headers={"Authorization": f"Bearer {old}"})
            )
            show(
                "new token", httpx.get(f"{rs}/users/me", headers={"Authorization": f"Bearer {new}"})
            )

            say(f"Revoke the old key ({kid_of(old)}), as after a compromise")
            print(script(env, "rotate_keys.py", "--revoke", kid_of(old)), end="")
            time.sleep(2.5)  # the issuer reloads, the resource server's cache (1 s) refreshes
            show(
                "old token", httpx.get(f"{rs}/users/me", headers={"Authorization": f"Bearer {old}"})
            )
            show(
                "new token", httpx.get(f"{rs}/users/me", headers={"Authorization": f"Bearer {new}"})
            )
        say("Done: services stopped, temporary files removed")
    return 0


if __name__ == "__main__":
    run(main)
