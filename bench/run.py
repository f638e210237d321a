"""`make bench`: every figure is a ratio against a ceiling or a peer measured side by side.

Loopback only, bounded in time (a few minutes). Each comparison is BENCH_PAIRS (3) pairs of
BENCH_SECONDS (5 s) runs, interleaved A-B, B-A, A-B after a short warm-up; a target passes on
the median of the per-pair ratios, and the table shows their range. Load comes from Debian's
`wrk -t1 -c32`; latency under login load from a fixed-rate prober (a closed-loop generator
would hide queueing). The peers are panva's oidc-provider and jose on Node (bench/peers/).
Prints one table and writes JSON (bench/results.json, or the path in BENCH_OUTPUT).
"""

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ceilings
import httpx
import peers
import report
import servers
import tokens
from load import CONNECTIONS, DURATION, PAIRS, WARMUP, Load, Pairs, interleave, probe_under, wrk
from report import Figure, compare
from servers import Service, serving

from issuer.admin import create_client, create_user
from issuer.keys.files import FileKeyStore
from issuer.settings import Settings
from resource_server.settings import Settings as ResourceServerSettings
from servicekit.processes import ROOT, free_port

ROUNDS = int(os.environ.get("BENCH_BCRYPT_ROUNDS", "10"))
# Distinct tokens for the cache-miss stream; must exceed what the verified-token cache holds.
TOKEN_COUNT = int(os.environ.get("BENCH_TOKENS", "20000"))
PASSWORD = "bench-password-1"
# The same client, secret method and request body on both issuers.
CLIENT_ID, SCOPE = peers.CLIENT_ID, "read"
CC_BODY = f"grant_type=client_credentials&scope={SCOPE}"
JWKS = "/.well-known/jwks.json"


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": httpx.BasicAuth(client_id, secret)._auth_header}


def load_on(
    service: Service, path: str, headers: dict[str, str] | None = None, body: str = ""
) -> Callable[[float], Load]:
    """A wrk run of `seconds` on `service`'s `path`, metering that service's CPU."""
    return lambda seconds: wrk(service.url + path, headers, body, seconds, server=service)


@dataclass
class Bench:
    work: Path
    env: dict[str, str]
    issuer: Service
    provider: Service
    secret: str
    figures: list[Figure]
    notes: dict[str, Any]

    def figure(self, number: str) -> Figure:
        return next(f for f in self.figures if f.name.startswith(number + " "))


def busiest_thread(pairs: Pairs, peer: str) -> dict[str, dict[str, float]]:
    """Where each side's limit was (median runs): its busiest thread's cores and CPU a request
    (near 1.0 core: that thread's work cannot spread), and the cores the machine was busy
    (near all of them: the machine was full)."""
    note = {}
    for side, name in (("ours", "ours"), ("peer", peer)):
        cores = pairs.cores(side, "busiest_thread") or float("nan")
        note[name] = {
            "cores": cores,
            "us a request": cores / pairs.median(side) * 1e6,
            "machine busy": pairs.cores(side, "machine_busy") or float("nan"),
        }
    return note


def resource_servers(bench: Bench, token: str) -> None:
    """Ours, PyJWT's PyJWKClient in FastAPI, and jose on Node, all verifying OUR token
    through OUR JWKS (issuer, audience `api`, `typ: at+jwt`, RS256).
    """
    issuer, figures = bench.issuer.url, bench.figures
    auth = {"Authorization": f"Bearer {token}"}
    with (
        serving("resource_server.app:app", {**bench.env, "RS_ISSUER_URL": issuer}) as rs,
        serving("reference_pyjwt_rs:app", {**bench.env, "REF_ISSUER_URL": issuer}) as ref,
        peers.jose_rs(issuer, issuer + JWKS, audience="api") as jose,
    ):
        at = len(token) - 10  # one character inside the signature, changed
        forged_token = token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1 :]
        forged = {"Authorization": f"Bearer {forged_token}"}
        for service in (rs, ref, jose):
            httpx.get(f"{service.url}/users/me", headers=auth).raise_for_status()
            # A peer that accepted a bad signature would be measured doing less work.
            status = httpx.get(f"{service.url}/users/me", headers=forged).status_code
            assert status == 401, f"{service.name} accepted a forged token ({status})"

        same = load_on(rs, "/users/me", auth)
        trivial = interleave(same, load_on(rs, "/healthz"))
        figures.append(compare("1. RS /users/me vs trivial route", trivial, "/healthz", ">=", 0.9))
        pyjwk = interleave(same, load_on(ref, "/users/me", auth))
        figures.append(compare("2. RS /users/me vs PyJWKClient", pyjwk, "PyJWKClient", ">=", 1.5))
        figures.append(
            compare(
                "2b. RS /users/me p99 vs PyJWKClient",
                pyjwk,
                "PyJWKClient",
                "<=",
                1.0,
                metric="p99_ms",
                unit="ms",
            )
        )
        node = interleave(same, load_on(jose, "/users/me", auth))
        figures.append(compare("8. RS /users/me same token vs jose", node, "jose", ">=", 1.5))

        # A token never seen before on every request (jose has no cache, so it always pays).
        print(f"minting {TOKEN_COUNT:,} tokens with client_credentials ...", flush=True)
        start = time.monotonic()
        minted = tokens.mint(issuer, CLIENT_ID, bench.secret, SCOPE, TOKEN_COUNT, bench.work)
        print(f"minted in {time.monotonic() - start:.0f} s", flush=True)
        stream = tokens.TokenStream(bench.work / "tokens.txt", minted)
        before = tokens.cache_lookups(rs.url)
        misses = interleave(lambda s: stream.run(rs, s), lambda s: stream.run(jose, s))
        after = tokens.cache_lookups(rs.url)
        figure = compare("10. RS /users/me new token vs jose", misses, "jose", ">=", 1.0)
        hits = after.get("hit", 0) - before.get("hit", 0)
        figure.errors += hits  # a cache hit would measure the other path: it cannot pass
        figures.append(figure)
        bench.notes["10. busiest thread"] = busiest_thread(misses, "jose")
        bench.notes["10. token stream"] = {
            "distinct tokens": stream.count,
            "RS_TOKEN_CACHE_SIZE": ResourceServerSettings().token_cache_size,
            "requests to ours": stream.sent(rs),
            "requests to jose": stream.sent(jose),
            "our cache hits": hits,
            "our cache misses": after.get("miss", 0) - before.get("miss", 0),
        }


def issuer_figures(bench: Bench) -> None:
    """The JWKS and issuance against the issuer's own ceilings and against oidc-provider."""
    issuer, provider, figures = bench.issuer, bench.provider, bench.figures
    jwks = load_on(issuer, JWKS)
    trivial = interleave(jwks, load_on(issuer, "/healthz"))
    figures.append(compare("3. Issuer JWKS vs trivial route", trivial, "/healthz", ">=", 0.95))
    node = interleave(jwks, load_on(provider, "/jwks"))
    figures.append(compare("9. Issuer JWKS vs oidc-provider", node, "oidc-provider", ">=", 1.5))

    issue = load_on(issuer, "/token", basic(CLIENT_ID, bench.secret), CC_BODY)
    signing = interleave(issue, ceilings.raw_signing)
    figures.append(
        compare("4. Issuance (1 worker) vs raw RS256 signing", signing, "signs/s", ">=", 0.5)
    )
    peer_issue = load_on(provider, "/token", basic(CLIENT_ID, peers.CLIENT_SECRET), CC_BODY)
    node_issue = interleave(issue, peer_issue)
    figures.append(
        compare("11. client_credentials vs oidc-provider", node_issue, "oidc-provider", ">=", 1.5)
    )
    bench.notes["11. busiest thread"] = busiest_thread(node_issue, "oidc-provider")
    bench.notes["11. issuance req/s per core used"] = {
        "ours": node_issue.median("ours") / (node_issue.cores("ours") or float("nan")),
        "oidc-provider": node_issue.median("peer") / (node_issue.cores("peer") or float("nan")),
    }
    bench.notes["11. CPU us a token by thread"] = {
        "ours": node_issue.cpu_by_thread_kind("ours"),
        "oidc-provider": node_issue.cpu_by_thread_kind("peer"),
    }
    bench.notes["11. ceiling"] = issuance_ceiling(bench, peer_issue)

    # Logins against bcrypt on all cores, and the JWKS p99 meanwhile (open-loop prober).
    login = f"username=alice&password={PASSWORD}"
    jwks_p99: list[float] = []

    def logins(seconds: float) -> Load:
        load, p99 = probe_under(f"{issuer.url}/token", login, issuer.url + JWKS, 8, seconds, issuer)
        jwks_p99.append(p99)
        return load

    hashing = interleave(logins, lambda s: ceilings.bcrypt_all_cores(ROUNDS, s), warmup=0)
    figures.append(
        compare(
            f"5. Logins vs bcrypt, all cores (cost {ROUNDS})",
            hashing,
            "bcrypt",
            ">=",
            0.8,
            unit="/s",
        )
    )
    figures.append(
        Figure(
            "5b. JWKS p99 under login flood",
            ours=statistics.median(jwks_p99),
            peer=0,
            peer_name="limit",
            unit="ms",
            values=jwks_p99,
            op="<",
            threshold=50,
            absolute=True,
        )
    )


def issuance_ceiling(bench: Bench, peer_issue: Callable[[float], Load]) -> dict[str, Any]:
    """Figure 11's ceiling on this machine: bench/bare_issuer.py, which only serves, hands
    off to the issuer's kind of signing threads and signs (no client authentication, limits,
    form or claims), against oidc-provider as figure 11 measures it."""
    env = {**bench.env, "SIGN_THREADS": str(os.cpu_count() or 1)}
    with serving("bare_issuer:app", env, health="/token") as bare:
        same_request = load_on(bare, "/token", basic(CLIENT_ID, bench.secret), CC_BODY)
        pairs = interleave(same_request, peer_issue)
    ratios = pairs.ratios()
    return {
        "bare issuer req/s": pairs.median("ours"),
        "oidc-provider req/s": pairs.median("peer"),
        "ratio median": statistics.median(ratios),
        "ratio min": min(ratios),
        "ratio max": max(ratios),
        "bare issuer cores": pairs.cores("ours"),
        "bare issuer CPU us a token by thread": pairs.cpu_by_thread_kind("ours"),
    }


def references(bench: Bench) -> None:
    """Issuance with two workers, and the tutorial's way measured the same way (no targets)."""
    with serving("issuer.app:app", bench.env, workers=2) as issuer2:
        issue2 = wrk(f"{issuer2.url}/token", basic(CLIENT_ID, bench.secret), CC_BODY)
    bench.notes["4. issuance req/s with 2 workers"] = issue2.rps
    with serving(
        "reference_tutorial:app", {**bench.env, "REF_ROUNDS": str(ROUNDS)}, health="/ping"
    ) as tut:
        tut_token = httpx.post(
            f"{tut.url}/token", data={"username": "johndoe", "password": "secret123"}
        )
        tut_auth = {"Authorization": f"Bearer {tut_token.json()['access_token']}"}
        tut_me = wrk(f"{tut.url}/users/me", tut_auth)
        tut_logins, tut_ping_p99 = probe_under(
            f"{tut.url}/token",
            "username=johndoe&password=secret123",
            f"{tut.url}/ping",
            8,
            DURATION,
            tut,
        )
    bench.notes["6. tutorial issuer"] = {
        "/token logins/s": tut_logins.rps,
        "/users/me req/s": tut_me.rps,
        "ping p99 ms under login load": tut_ping_p99,
        "ours: logins/s": bench.figure("5.").ours,
        "ours: /users/me req/s": bench.figure("1.").ours,
        "ours: JWKS p99 ms under login load": bench.figure("5b.").ours,
    }


@contextmanager
def users_database(work: Path, users: int) -> Iterator[Service]:
    """An issuer on a SQLite database holding `users` (bcrypt cost 4, so lookups show)."""
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
    with serving("issuer.app:app", env) as service:
        yield service


def many_users(bench: Bench) -> None:
    """Login p50 with 100,000 users against one, both issuers up and measured in turns."""
    body = f"username=alice&password={PASSWORD}"

    def login(service: Service) -> Callable[[float], Load]:
        url = f"{service.url}/token"
        return lambda seconds: wrk(url, body=body, seconds=seconds, connections=4, server=service)

    with users_database(bench.work, 1) as one, users_database(bench.work, 100_000) as big:
        pairs = interleave(login(big), login(one))
    bench.figures.append(
        compare(
            "7. Login p50, 100,000 users vs 1 (cost 4)",
            pairs,
            "1 user",
            "<=",
            1.25,
            metric="p50_ms",
            unit="ms",
        )
    )


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk (make bench does this)", file=sys.stderr)
        return 2
    servers.check_server()
    peers.prepare()
    started = time.monotonic()
    machine = report.machine()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    env = {
        "ISSUER_KEYS_DIR": str(work / "keys"),
        "ISSUER_DATABASE_URL": f"sqlite:///{work / 'issuer.db'}",
        "ISSUER_BCRYPT_ROUNDS": str(ROUNDS),
        # The benchmark measures throughput, not the abuse limits.
        "ISSUER_RATE_LIMIT_PER_IP": "100000000",
        "ISSUER_RATE_LIMIT_PER_CLIENT": "100000000",
        "ISSUER_HASH_QUEUE": "100000",
        "PYTHONPATH": str(ROOT / "bench"),
    }
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    settings = Settings()
    FileKeyStore(settings.keys_dir).generate()
    create_user(settings, "alice", PASSWORD, scope="profile")
    secret = create_client(settings, CLIENT_ID, ("client_credentials",), scope=SCOPE).secret
    assert secret is not None
    cache_size = ResourceServerSettings().token_cache_size
    if cache_size >= TOKEN_COUNT:
        sys.exit(f"BENCH_TOKENS={TOKEN_COUNT} must exceed RS_TOKEN_CACHE_SIZE={cache_size}")

    port = free_port()
    env["ISSUER_URL"] = f"http://127.0.0.1:{port}"
    try:
        with (
            serving("issuer.app:app", env, port=port) as issuer,
            peers.oidc_provider() as provider,
        ):
            bench = Bench(work, env, issuer, provider, secret, [], {})
            token = tokens.client_credentials(issuer.url, CLIENT_ID, secret, SCOPE)
            peer_token = tokens.client_credentials(
                provider.url, CLIENT_ID, peers.CLIENT_SECRET, SCOPE
            )
            bench.notes["JWKS documents"] = {
                name: {"bytes": len(response.content), "keys": len(response.json()["keys"])}
                for name, response in (
                    ("ours", httpx.get(issuer.url + JWKS)),
                    ("oidc-provider", httpx.get(f"{provider.url}/jwks")),
                )
            }
            resource_servers(bench, token)
            issuer_figures(bench)
        references(bench)
        many_users(bench)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    wall = time.monotonic() - started
    machine["load_average_at_end"] = os.getloadavg()
    settings_note = {
        "server": f"{servers.SERVER}, 1 worker",
        "seconds": DURATION,
        "pairs": PAIRS,
        "warmup_seconds": WARMUP,
        "connections": CONNECTIONS,
        "wrk threads": 1,
        "bcrypt_rounds": ROUNDS,
        "order": "A-B, B-A, A-B, ... (ours first in even pairs)",
    }
    figures = sorted(bench.figures, key=lambda f: int(f.name.split(".")[0].rstrip("b")))
    print_report(bench, figures, machine, {"ours": token, "oidc-provider": peer_token}, wall)
    results = {
        "figures": {f.name: f.as_json() for f in figures},
        "notes": bench.notes,
        "settings": settings_note,
        "machine": machine,
        "tokens": {
            name: dict(zip(("header", "claims"), tokens.decode(t), strict=True))
            for name, t in {"ours": token, "oidc-provider": peer_token}.items()
        },
        "wall_seconds": wall,
    }
    output = Path(os.environ.get("BENCH_OUTPUT", ROOT / "bench" / "results.json"))
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {output}")
    return 0  # figures are indicative on a shared machine; the table says what missed


def print_report(
    bench: Bench,
    figures: list[Figure],
    machine: dict[str, Any],
    sample: dict[str, str],
    wall: float,
) -> None:
    notes = bench.notes
    print(
        f"\nBenchmark on {machine['cpu']} ({machine['cores']} cores), Python {machine['python']}, "
        f"Node {machine['node']}; ours on {servers.SERVER} with 1 worker; "
        f"wrk -t1 -c{CONNECTIONS}; per figure {PAIRS} pairs of {DURATION:g} s runs "
        f"(A-B, B-A, ... after {WARMUP:g} s warm-up), judged on the median ratio.\n"
        f"Load average {machine['load_average_at_start'][0]:.2f} at start, "
        f"{machine['load_average_at_end'][0]:.2f} at end (other work shares these cores).\n"
    )
    for line in report.table(figures):
        print(line)
    issuance = bench.figure("11.")
    stream = notes["10. token stream"]
    tutorial = notes["6. tutorial issuer"]
    busiest = {
        figure: ", ".join(
            f"{name} {thread['cores']:.2f} cores, {thread['us a request']:.0f} us a request "
            f"(machine busy {thread['machine busy']:.2f} of {machine['cores']} cores)"
            for name, thread in notes[f"{figure} busiest thread"].items()
        )
        for figure in ("10.", "11.")
    }
    cpu_by_thread = {
        side: _kinds(kinds) for side, kinds in notes["11. CPU us a token by thread"].items()
    }
    ceiling = notes["11. ceiling"]
    print(
        f"\ncores = CPU time of the server process and its children / wall time (median run).\n"
        f"11. issuance cores: ours {issuance.ours_cores:.2f}, oidc-provider "
        f"{issuance.peer_cores:.2f} (libuv pool included); req/s per core: ours "
        f"{notes['11. issuance req/s per core used']['ours']:,.0f}, oidc-provider "
        f"{notes['11. issuance req/s per core used']['oidc-provider']:,.0f}\n"
        f"11. busiest thread: {busiest['11.']}\n"
        f"11. CPU a token by thread: ours {cpu_by_thread['ours']}; "
        f"oidc-provider {cpu_by_thread['oidc-provider']}\n"
        f"11. ceiling on this machine: bench/bare_issuer.py (server, hand-off and signature "
        f"only) {ceiling['bare issuer req/s']:,.0f} req/s against oidc-provider's "
        f"{ceiling['oidc-provider req/s']:,.0f}: {ceiling['ratio median']:.2f} "
        f"({ceiling['ratio min']:.2f}-{ceiling['ratio max']:.2f}); by thread "
        f"{_kinds(ceiling['bare issuer CPU us a token by thread'])}\n"
        f"10. {stream['distinct tokens']:,} distinct tokens (cache holds "
        f"{stream['RS_TOKEN_CACHE_SIZE']:,}), round-robin: ours got "
        f"{stream['requests to ours']:,} requests, {stream['our cache hits']} cache hits, "
        f"{stream['our cache misses']:,} misses; jose got {stream['requests to jose']:,}\n"
        f"10. busiest thread: {busiest['10.']}\n"
        f"4. issuance with 2 workers: {notes['4. issuance req/s with 2 workers']:,.0f} req/s\n"
        f"6. tutorial: logins {tutorial['/token logins/s']:.1f}/s (ours "
        f"{tutorial['ours: logins/s']:.1f}/s), /users/me {tutorial['/users/me req/s']:,.0f} "
        f"req/s (ours {tutorial['ours: /users/me req/s']:,.0f}), ping p99 under login load "
        f"{tutorial['ping p99 ms under login load']:.0f} ms (ours, JWKS: "
        f"{tutorial['ours: JWKS p99 ms under login load']:.1f} ms)"
    )
    print("\nOne access token from each issuer, decoded without verifying:")
    for line in tokens.side_by_side(sample):
        print("  " + line)
    jwks = notes["JWKS documents"]
    described = (f"{name} {doc['bytes']} bytes, {doc['keys']} key(s)" for name, doc in jwks.items())
    print("  JWKS documents: " + "; ".join(described))
    print(f"\nwall time {wall:.0f} s")


def _kinds(cpu: dict[str, float]) -> str:
    """A token's CPU in all and by kind of thread: `1,321 us (signing 867, main 311, ...)`."""
    parts = ", ".join(f"{kind} {us:,.0f}" for kind, us in cpu.items() if us >= 0.5)
    return f"{sum(cpu.values()):,.0f} us ({parts})"


if __name__ == "__main__":
    sys.exit(main())
