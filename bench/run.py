"""`make bench`: every figure is a ratio against a ceiling measured side by side in this run.

Loopback only, bounded in time (about two minutes). Prints a table and writes JSON
(bench/results.json, or the path in BENCH_OUTPUT). Load comes from Debian's `wrk`; latency
under login load from a fixed-rate prober (a closed-loop generator would hide queueing).
"""

import asyncio
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from issuer.admin import create_client, create_user
from issuer.keys.files import FileKeyStore
from issuer.settings import Settings
from servicekit.processes import ROOT, free_port, serving

DURATION = float(os.environ.get("BENCH_SECONDS", "5"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
ROUNDS = int(os.environ.get("BENCH_BCRYPT_ROUNDS", "10"))
LUA = Path(__file__).with_name("wrk_json.lua")
PASSWORD = "bench-password-1"


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def wrk(
    url: str,
    headers: dict[str, str] | None = None,
    body: str = "",
    seconds: float = DURATION,
    connections: int = CONNECTIONS,
) -> Load:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(LUA), url]
    for name, value in (headers or {}).items():
        argv[1:1] = ["-H", f"{name}: {value}"]
    env = {**os.environ, "WRK_METHOD": "POST" if body else "GET", "WRK_BODY": body}
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=seconds + 30)
    data = _wrk_result(out.stdout, out.stderr)
    return Load(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["socket_errors"] + data["non_2xx"],
    )


def alternate(a: Callable[[], Load], b: Callable[[], Load]) -> tuple[Load, Load]:
    """A, B, B, A: each side gets the same share of the machine's drift; results merged."""
    first_a, first_b, second_b, second_a = a(), b(), b(), a()
    return _merge(first_a, second_a), _merge(first_b, second_b)


def _merge(x: Load, y: Load) -> Load:
    return Load(
        (x.rps + y.rps) / 2, max(x.p50_ms, y.p50_ms), max(x.p99_ms, y.p99_ms), x.errors + y.errors
    )


def _wrk_result(stdout: str, stderr: str) -> dict[str, int]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    raise RuntimeError(f"wrk printed no result:\n{stdout}\n{stderr}")


async def probe(url: str, rate: float, seconds: float) -> tuple[float, int]:
    """Fixed-rate GETs (open loop); the p99 latency in ms and the number of failures."""
    latencies: list[float] = []
    failures = 0
    async with httpx.AsyncClient(timeout=10) as client:

        async def one() -> None:
            nonlocal failures
            start = time.perf_counter()
            try:
                response = await client.get(url)
                if response.status_code != 200:
                    failures += 1
            except httpx.HTTPError:
                failures += 1
            latencies.append((time.perf_counter() - start) * 1000)

        tasks = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            tasks.append(asyncio.create_task(one()))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)
    latencies.sort()
    return latencies[int(len(latencies) * 0.99) - 1], failures


def probe_under(load_url: str, body: str, probe_url: str, connections: int) -> tuple[Load, float]:
    """Run `wrk` POST load and a 20 req/s prober at the same time."""
    with tempfile.TemporaryFile() as _:
        argv = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{int(DURATION) + 2}s",
            "-s",
            str(LUA),
            load_url,
        ]
        env = {**os.environ, "WRK_METHOD": "POST", "WRK_BODY": body}
        loader = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
        time.sleep(1)
        p99, failures = asyncio.run(probe(probe_url, 20, DURATION))
        out, _ = loader.communicate(timeout=DURATION + 30)
    data = _wrk_result(out, "")
    load = Load(
        data["requests"] / (data["duration_us"] / 1e6),
        data["p50_us"] / 1000,
        data["p99_us"] / 1000,
        data["socket_errors"] + data["non_2xx"],
    )
    return load, p99 if not failures else float("inf")


def raw_signing_rate(seconds: float = 2.0) -> float:
    """RS256 signatures per second with `cryptography` on one core."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    message = b"x" * 400
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        count += 1
    return count / (time.perf_counter() - start)


def _bcrypt_worker(args: tuple[bytes, float]) -> int:
    hashed, seconds = args
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        bcrypt.checkpw(b"wrong-password", hashed)
        count += 1
    return count


def bcrypt_rate_all_cores(rounds: int, seconds: float = 3.0) -> float:
    hashed = bcrypt.hashpw(b"x", bcrypt.gensalt(rounds))
    cores = os.cpu_count() or 1
    with multiprocessing.Pool(cores) as pool:
        counts = pool.map(_bcrypt_worker, [(hashed, seconds)] * cores)
    return sum(counts) / seconds


def server(
    app: str, env: dict[str, str], workers: int = 1, port: int | None = None
) -> AbstractContextManager[str]:
    health = "/ping" if "tutorial" in app else "/healthz"
    return serving(app, env, port=port, health=health, workers=workers)


def login_latency_with_users(work: Path, users: int) -> float:
    """Median login latency (ms) at low concurrency on a SQLite database holding `users`."""
    from sqlalchemy import insert

    from issuer.accounts.users import User
    from issuer.storage.engine import make_engine

    directory = work / f"users-{users}"
    directory.mkdir()
    env = {
        "ISSUER_KEYS_DIR": str(work / "keys"),
        "ISSUER_DATABASE_URL": f"sqlite:///{directory / 'issuer.db'}",
        "ISSUER_BCRYPT_ROUNDS": "4",
        "ISSUER_RATE_LIMIT_PER_IP": "100000000",
        "ISSUER_HASH_QUEUE": "100000",
    }
    settings = Settings(
        keys_dir=work / "keys", database_url=env["ISSUER_DATABASE_URL"], bcrypt_rounds=4
    )
    create_user(settings, "alice", PASSWORD)
    engine = make_engine(settings.database_url)
    with engine.begin() as connection:
        stored = connection.execute(User.__table__.select()).first()
        assert stored is not None
        for start in range(1, users, 10_000):
            connection.execute(
                insert(User),
                [
                    {
                        "username": f"user{n:06d}",
                        "password_hash": stored.password_hash,
                        "scopes": "",
                        "disabled": False,
                        "created_at": stored.created_at,
                    }
                    for n in range(start, min(start + 10_000, users))
                ],
            )
    engine.dispose()
    with server("issuer.app:app", env) as url:
        load = wrk(f"{url}/token", body=f"username=alice&password={PASSWORD}", connections=4)
    return load.p50_ms


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk (make bench does this)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    base_env = {
        "ISSUER_KEYS_DIR": str(work / "keys"),
        "ISSUER_DATABASE_URL": f"sqlite:///{work / 'issuer.db'}",
        "ISSUER_BCRYPT_ROUNDS": str(ROUNDS),
        # The benchmark measures throughput, not the abuse limits.
        "ISSUER_RATE_LIMIT_PER_IP": "100000000",
        "ISSUER_RATE_LIMIT_PER_CLIENT": "100000000",
        "ISSUER_HASH_QUEUE": "100000",
        "PYTHONPATH": str(ROOT / "bench"),
    }
    os.environ.update({k: v for k, v in base_env.items() if k != "PYTHONPATH"})
    settings = Settings()
    FileKeyStore(settings.keys_dir).generate()
    create_user(settings, "alice", PASSWORD, scope="profile")
    secret = create_client(settings, "bench", ("client_credentials",), scope="profile").secret
    assert secret is not None
    results: dict[str, object] = {}
    rows: list[tuple[str, str, str, str, str]] = []

    def row(
        name: str, ours: float, ceiling: float, target: str, ok: bool, unit: str = "req/s"
    ) -> None:
        ratio = ours / ceiling
        rows.append(
            (
                name,
                f"{ours:,.0f} {unit}",
                f"{ceiling:,.0f} {unit}",
                f"{ratio:.2f}",
                f"{target} {'PASS' if ok else 'MISS'}",
            )
        )
        results[name] = {
            "ours": ours,
            "ceiling": ceiling,
            "ratio": ratio,
            "target": target,
            "met": ok,
        }

    port = free_port()
    issuer_url = f"http://127.0.0.1:{port}"
    issuer_env = {**base_env, "ISSUER_URL": issuer_url}
    issuer = ExitStack()
    try:
        issuer.enter_context(server("issuer.app:app", issuer_env, port=port))
        token = httpx.post(
            f"{issuer_url}/token", data={"username": "alice", "password": PASSWORD}
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        rs_env = {**base_env, "RS_ISSUER_URL": issuer_url}

        # 1 and 2: the resource server against its own trivial route and against PyJWKClient.
        ref_env = {**base_env, "REF_ISSUER_URL": issuer_url}
        with (
            server("resource_server.app:app", rs_env) as rs,
            server("reference_pyjwt_rs:app", ref_env) as ref,
        ):
            httpx.get(f"{rs}/users/me", headers=auth).raise_for_status()
            httpx.get(f"{ref}/users/me", headers=auth).raise_for_status()
            half = DURATION / 2
            rs_ping, rs_me = alternate(
                lambda: wrk(f"{rs}/healthz", seconds=half),
                lambda: wrk(f"{rs}/users/me", auth, seconds=half),
            )
            rs_me2, ref_me = alternate(
                lambda: wrk(f"{rs}/users/me", auth, seconds=half),
                lambda: wrk(f"{ref}/users/me", auth, seconds=half),
            )
        row(
            "1. RS /users/me vs trivial route",
            rs_me.rps,
            rs_ping.rps,
            ">= 0.90",
            rs_me.rps / rs_ping.rps >= 0.90,
        )
        row(
            "2. RS /users/me vs PyJWKClient server",
            rs_me2.rps,
            ref_me.rps,
            ">= 1.5",
            rs_me2.rps / ref_me.rps >= 1.5 and rs_me2.p99_ms <= ref_me.p99_ms,
        )
        results["2. p99 ms (ours, PyJWKClient)"] = [rs_me2.p99_ms, ref_me.p99_ms]

        # 3: the JWKS document against the issuer's trivial route.
        iss_ping, jwks = alternate(
            lambda: wrk(f"{issuer_url}/healthz", seconds=DURATION / 2),
            lambda: wrk(f"{issuer_url}/.well-known/jwks.json", seconds=DURATION / 2),
        )
        row(
            "3. Issuer JWKS vs trivial route",
            jwks.rps,
            iss_ping.rps,
            ">= 0.95",
            jwks.rps / iss_ping.rps >= 0.95,
        )

        # 4: token issuance without password hashing against raw RS256 signing on one core.
        basic = httpx.BasicAuth("bench", secret)._auth_header
        cc_body = "grant_type=client_credentials"
        issue1 = wrk(f"{issuer_url}/token", {"Authorization": basic}, cc_body)
        signing = raw_signing_rate()
        row(
            "4. Token issuance (1 worker) vs raw RS256 signing",
            issue1.rps,
            signing,
            ">= 0.5",
            issue1.rps / signing >= 0.5,
        )

        # 5: logins against bcrypt on all cores, and JWKS latency meanwhile.
        login_body = f"username=alice&password={PASSWORD}"
        logins, jwks_p99 = probe_under(
            f"{issuer_url}/token", login_body, f"{issuer_url}/.well-known/jwks.json", connections=8
        )
        hashing = bcrypt_rate_all_cores(ROUNDS)
        row(
            f"5. Logins/s vs bcrypt/s on all cores (cost {ROUNDS})",
            logins.rps,
            hashing,
            ">= 0.8",
            logins.rps / hashing >= 0.8,
            unit="/s",
        )
        results["5. JWKS p99 ms under login load"] = {
            "ours": jwks_p99,
            "target": "< 50",
            "met": jwks_p99 < 50,
        }
    finally:
        issuer.close()

    with server("issuer.app:app", issuer_env, workers=2) as issuer2:
        issue2 = wrk(f"{issuer2}/token", {"Authorization": basic}, cc_body)
    results["4. Token issuance req/s (1 worker, 2 workers)"] = [issue1.rps, issue2.rps]

    # 6: the tutorial's way, measured the same way.
    with server("reference_tutorial:app", {**base_env, "REF_ROUNDS": str(ROUNDS)}) as tut:
        tut_token = httpx.post(
            f"{tut}/token", data={"username": "johndoe", "password": "secret123"}
        )
        tut_auth = {"Authorization": f"Bearer {tut_token.json()['access_token']}"}
        tut_me = wrk(f"{tut}/users/me", tut_auth)
        tut_logins, tut_ping_p99 = probe_under(
            f"{tut}/token", "username=johndoe&password=secret123", f"{tut}/ping", connections=8
        )
    results["6. Tutorial issuer"] = {
        "/token logins/s": tut_logins.rps,
        "/users/me req/s": tut_me.rps,
        "ping p99 ms under login load": tut_ping_p99,
        "ours: logins/s": logins.rps,
        "ours: /users/me req/s": rs_me.rps,
        "ours: JWKS p99 ms under login load": jwks_p99,
    }

    # 7: login latency with 100,000 users against one user (bcrypt cost 4 so lookups show).
    flat_small, flat_big = (
        login_latency_with_users(work, 1),
        login_latency_with_users(work, 100_000),
    )
    rows.append(
        (
            "7. Login p50 with 100,000 users vs 1 (cost 4)",
            f"{flat_big:.2f} ms",
            f"{flat_small:.2f} ms",
            f"{flat_big / flat_small:.2f}",
            f"<= 1.25 {'PASS' if flat_big / flat_small <= 1.25 else 'MISS'}",
        )
    )
    results["7. Login p50 ms, 100,000 users vs 1"] = {
        "ours": flat_big,
        "ceiling": flat_small,
        "ratio": flat_big / flat_small,
        "target": "<= 1.25",
        "met": flat_big / flat_small <= 1.25,
    }

    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    results["machine"] = machine
    results["settings"] = {"seconds": DURATION, "connections": CONNECTIONS, "bcrypt_rounds": ROUNDS}
    print(f"\nBenchmark on {machine}; wrk -t1 -c{CONNECTIONS} -d{DURATION:g}s per figure\n")
    header = ("measure", "ours", "ceiling", "ratio", "target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for line in [header, *rows]:
        print(" | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
    verdict = "PASS" if rs_me2.p99_ms <= ref_me.p99_ms else "MISS"
    print(f"\n2. p99 ms: ours {rs_me2.p99_ms:.1f}, PyJWKClient {ref_me.p99_ms:.1f} ({verdict})")
    print(f"4. issuance req/s: 1 worker {issue1.rps:,.0f}, 2 workers {issue2.rps:,.0f}")
    print(f"5. JWKS p99 under login load: {jwks_p99:.1f} ms (target < 50 ms)")
    print(
        f"6. tutorial: logins {tut_logins.rps:.1f}/s (ours {logins.rps:.1f}/s), /users/me "
        f"{tut_me.rps:,.0f} req/s (ours {rs_me.rps:,.0f}), ping p99 under login load "
        f"{tut_ping_p99:.0f} ms (ours, JWKS: {jwks_p99:.1f} ms)"
    )
    output = Path(os.environ.get("BENCH_OUTPUT", ROOT / "bench" / "results.json"))
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {output}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
