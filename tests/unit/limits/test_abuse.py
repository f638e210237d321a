"""Abuse resistance of POST /token: limits, backoff, overload, enumeration, hygiene."""

import asyncio
import contextlib
import json
import logging
import secrets as random_secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.types import ASGIApp

from issuer.accounts.demo import DEMO_PASSWORD, DEMO_USERNAME
from issuer.accounts.users import User
from issuer.admin import change_user, create_client, create_user
from issuer.app import create_app
from issuer.limits.counters import make_store
from issuer.settings import Settings
from issuer.storage.redis_client import connect_redis
from tests.support import REDIS_URL, FakeClock, db_session, fresh_key_set, running, served

ISSUER = "http://issuer.test"


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    if not (tmp_path / "keys").exists():
        fresh_key_set(tmp_path / "keys")
    values: dict[str, object] = {
        "url": ISSUER,
        "keys_dir": tmp_path / "keys",
        "database_url": f"sqlite:///{tmp_path / 'issuer.db'}",
        "bcrypt_rounds": 4,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def client_for(app: ASGIApp, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url=ISSUER)


async def login(client: httpx.AsyncClient, username: str = "alice", password: str = "wonderland1"):
    return await client.post("/token", data={"username": username, "password": password})


@pytest.fixture
def user_settings(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path)
    create_user(settings, "alice", "wonderland1")
    return settings


# -- rate limits --------------------------------------------------------------------------------


async def test_per_ip_limit_answers_429_and_retry_after_is_honoured(tmp_path, clock):
    settings = make_settings(tmp_path, rate_limit_per_ip=3, rate_limit_window=60)
    create_user(settings, "alice", "wonderland1")
    async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as client:
        for _ in range(3):
            assert (await login(client)).status_code == 200
        limited = await login(client)
        assert limited.status_code == 429
        assert limited.json()["error"] == "invalid_request"
        retry_after = int(limited.headers["retry-after"])
        assert 1 <= retry_after <= 60
        clock.advance(retry_after)
        assert (await login(client)).status_code == 200


async def test_a_step_back_of_the_wall_clock_stretches_no_limit(tmp_path, clock):
    # The review: the limits ran on the wall clock, so an NTP step or a resumed VM an hour
    # back kept a 60 s window (and the Redis breaker) shut for an hour more.
    settings = make_settings(tmp_path, rate_limit_per_ip=3, rate_limit_window=60)
    create_user(settings, "alice", "wonderland1")
    timer = FakeClock(1_000.0)
    async with running(create_app(settings, clock=clock, timer=timer), ISSUER) as client:
        for _ in range(3):
            assert (await login(client)).status_code == 200
        assert (await login(client)).status_code == 429
        clock.advance(-3600)
        timer.advance(60)
        assert (await login(client)).status_code == 200


async def test_per_client_limit_holds_across_ips(tmp_path, clock):
    settings = make_settings(tmp_path, rate_limit_per_client=2)
    secret = create_client(settings, "svc", ("client_credentials",)).secret
    app = create_app(settings, clock=clock, timer=clock)
    async with served(app) as asgi:
        statuses = []
        for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
            async with client_for(asgi, ip) as client:
                response = await client.post(
                    "/token", data={"grant_type": "client_credentials"}, auth=("svc", secret)
                )
                statuses.append(response.status_code)
    assert statuses == [200, 200, 429]


async def test_failed_logins_back_off_exponentially_and_success_resets(tmp_path, clock):
    settings = make_settings(tmp_path, login_free_failures=2)
    create_user(settings, "alice", "wonderland1")
    async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as client:
        for _ in range(3):
            assert (await login(client, password="wrong-guess")).status_code == 400
        waits = []
        for _ in range(3):
            blocked = await login(client, password="wrong-guess")
            assert blocked.status_code == 429
            waits.append(int(blocked.headers["retry-after"]))
            clock.advance(waits[-1])
            assert (await login(client, password="wrong-guess")).status_code == 400
        assert waits == [1, 2, 4]
        blocked = await login(client)  # even the right password waits out the backoff
        assert blocked.status_code == 429
        clock.advance(int(blocked.headers["retry-after"]))
        assert (await login(client)).status_code == 200
        assert (await login(client, password="wrong-guess")).status_code == 400  # reset


async def test_a_guesser_elsewhere_cannot_lock_the_user_out(tmp_path, clock):
    settings = make_settings(tmp_path, login_free_failures=2, rate_limit_per_username=10)
    create_user(settings, "alice", "wonderland1")
    app = create_app(settings, clock=clock, timer=clock)
    async with served(app) as asgi:
        async with client_for(asgi, "192.0.2.10") as home:
            assert (await login(home)).status_code == 200  # alice's own IP
        for i in range(12):  # a botnet: a few guesses from each of many IPs
            async with client_for(asgi, f"203.0.113.{i}") as bot:
                for _ in range(2):
                    await login(bot, password="guess-guess")
        async with client_for(asgi, "198.51.100.7") as stranger:
            assert (await login(stranger)).status_code == 429  # username cap for unknown IPs
        async with client_for(asgi, "192.0.2.10") as home:
            assert (await login(home)).status_code == 200  # alice is not locked out


async def test_unknown_usernames_are_throttled_like_real_ones(tmp_path, clock):
    settings = make_settings(tmp_path, login_free_failures=1)
    async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as client:
        statuses = [(await login(client, "ghost", "whatever1")).status_code for _ in range(3)]
    assert statuses == [400, 400, 429]


# -- Redis --------------------------------------------------------------------------------------


async def test_limits_are_shared_between_two_instances_through_redis(tmp_path, redis_prefix):
    settings = make_settings(
        tmp_path, redis_url=REDIS_URL, redis_prefix=redis_prefix, rate_limit_per_ip=3
    )
    create_user(settings, "alice", "wonderland1")
    async with (
        running(create_app(settings), ISSUER) as one,
        running(create_app(settings), ISSUER) as two,
    ):
        statuses = [(await login(c)).status_code for c in (one, two, one, two)]
    assert statuses == [200, 200, 200, 429]


async def test_redis_down_keeps_limits_per_process_and_never_500s(tmp_path, caplog):
    settings = make_settings(tmp_path, redis_url="redis://127.0.0.1:1/0", rate_limit_per_ip=2)
    create_user(settings, "alice", "wonderland1")
    with caplog.at_level(logging.WARNING, logger="issuer.limits.counters"):
        async with running(create_app(settings), ISSUER) as client:
            statuses = [(await login(client)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert sum("Redis unavailable" in r.getMessage() for r in caplog.records) == 1


# -- overload -----------------------------------------------------------------------------------


async def test_past_the_hashing_bound_logins_get_503_at_once(tmp_path):
    settings = make_settings(
        tmp_path, bcrypt_rounds=12, hash_workers=1, hash_queue=1, rate_limit_per_ip=1000
    )
    async with running(create_app(settings), ISSUER) as client:
        responses = await asyncio.gather(*(login(client, f"u{i}", "whatever1") for i in range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [400, 400, 503, 503, 503, 503]
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.json()["error"] == "temporarily_unavailable"
    assert busy.headers["retry-after"] == "1"


async def test_jwks_and_metadata_answer_during_a_login_flood(tmp_path):
    settings = make_settings(tmp_path, bcrypt_rounds=10, rate_limit_per_ip=1000)
    order: list[str] = []
    async with running(create_app(settings), ISSUER) as client:

        async def flood() -> None:
            await asyncio.gather(*(login(client, f"u{i}", "whatever1") for i in range(40)))
            order.append("flood")

        async def reads() -> None:
            await asyncio.sleep(0.05)
            for path in ("/.well-known/jwks.json", "/.well-known/openid-configuration") * 5:
                assert (await client.get(path)).status_code == 200
            order.append("reads")

        await asyncio.gather(flood(), reads())
    assert order == ["reads", "flood"]


# -- enumeration --------------------------------------------------------------------------------


async def test_unknown_wrong_and_disabled_are_indistinguishable(tmp_path, bcrypt_costs):
    settings = make_settings(
        tmp_path,
        bcrypt_rounds=5,
        rate_limit_per_ip=10_000,
        login_free_failures=10_000,
        rate_limit_per_username=10_000,
    )
    create_user(settings, "alice", "wonderland1")
    create_user(settings, "mallory", "wonderland1")
    with db_session(settings.database_url) as session:
        session.query(User).filter_by(username="mallory").one().disabled = True
        session.commit()
    cases = {
        "wrong": ("alice", "not-it-at-all"),
        "unknown": ("nobody", "wonderland1"),
        "disabled": ("mallory", "wonderland1"),
    }
    async with running(create_app(settings), ISSUER) as client:
        bodies, work = {}, {}
        logging.getLogger("issuer.accounts.passwords").addHandler(unreadable := _Collect())
        for name, (username, password) in cases.items():
            bcrypt_costs.clear()
            response = await login(client, username, password)
            work[name] = list(bcrypt_costs)  # counted, not timed: the work is the answer's time
            bodies[name] = (response.status_code, response.json())
    logging.getLogger("issuer.accounts.passwords").removeHandler(unreadable)
    assert unreadable.records == []  # no "stored password hash is unreadable" per guess
    assert len({str(body) for body in bodies.values()}) == 1
    assert work == {"wrong": [5], "unknown": [5], "disabled": [5]}  # one run each, same cost


async def test_a_nul_in_the_credentials_is_refused_alike_before_any_lookup(user_settings):
    # RFC 6749 Appendix A: no username or password holds NUL. The form reader refuses it
    # before the throttle, the lookup and the hash (which once refused it for real users only),
    # so the answer is the same whoever the user. (The hasher's own guard: test_passwords.)
    async with running(create_app(user_settings), ISSUER) as client:
        answers = set()
        for username, password in [
            ("alice", "guess\x00guess"),
            ("nobody", "guess\x00guess"),
            ("ali\x00ce", "wonderland1"),
        ]:
            response = await login(client, username, password)
            answers.add((response.status_code, response.text))
    assert len(answers) == 1
    status, body = answers.pop()
    assert status == 400 and json.loads(body)["error"] == "invalid_request"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# -- bad input ----------------------------------------------------------------------------------


@pytest.fixture
async def plain_client(user_settings) -> AsyncIterator[httpx.AsyncClient]:
    settings = user_settings.model_copy(update={"rate_limit_per_ip": 100_000})
    async with running(create_app(settings), ISSUER) as client:
        yield client


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"username=alice&password", "application/x-www-form-urlencoded"),
        (b"\xff\xfe\xfd", "application/x-www-form-urlencoded"),
        (b"{}", "application/json"),
        (b"username=alice", "text/plain"),
        (
            b'--b\r\nContent-Disposition: form-data; name="username"\r\n\r\nalice\r\n--b--',
            "multipart/form-data; boundary=b",
        ),
        (b"&".join(b"f%d=1" % i for i in range(100)), "application/x-www-form-urlencoded"),
        (b"", "application/x-www-form-urlencoded"),
    ],
    ids=["no-password-value", "non-utf8", "json", "text", "multipart", "many-fields", "empty"],
)
async def test_bad_bodies_get_400_with_an_error_body(plain_client, content, content_type):
    response = await plain_client.post(
        "/token", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_body_over_64_kib_is_413_even_without_content_length(plain_client):
    async def chunks():
        for _ in range(70):
            yield b"a" * 1024

    response = await plain_client.post(
        "/token", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413


@hypothesis_settings(
    max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(
    body=st.binary(max_size=400),
    content_type=st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "application/json",
            "",
            "application/x-www-form-urlencoded; charset=latin-1",
        ]
    ),
    authorization=st.one_of(
        st.none(), st.text(alphabet=st.characters(max_codepoint=126, min_codepoint=32), max_size=80)
    ),
)
async def test_nothing_a_client_sends_produces_a_5xx(
    plain_client, body, content_type, authorization
):
    headers = {"Content-Type": content_type}
    if authorization is not None:
        headers["Authorization"] = authorization
    for path in ("/token", "/revoke", "/introspect"):
        response = await plain_client.post(path, content=body, headers=headers)
        assert response.status_code < 500, (path, response.text)


# -- passwords, secrets, production -------------------------------------------------------------


async def test_outdated_hashes_are_upgraded_on_successful_login(tmp_path):
    old = make_settings(tmp_path, bcrypt_rounds=4)
    create_user(old, "alice", "wonderland1")
    async with running(create_app(old.model_copy(update={"bcrypt_rounds": 5})), ISSUER) as client:
        assert (await login(client)).status_code == 200
    with db_session(old.database_url) as session:
        assert (
            session.query(User)
            .filter_by(username="alice")
            .one()
            .password_hash.startswith("$2b$05$")
        )


async def test_logins_at_once_with_an_outdated_hash_all_get_their_refresh_tokens(tmp_path):
    # The first to finish re-hashes the password; the others, which checked the old hash,
    # must not take that for a new password set meanwhile (which would refuse them).
    old = make_settings(tmp_path, bcrypt_rounds=4)
    create_user(old, "alice", "wonderland1")
    create_client(old, "spa", ("password", "refresh_token"), public=True)
    form = {"grant_type": "password", "username": "alice", "password": "wonderland1"}
    async with running(create_app(old.model_copy(update={"bcrypt_rounds": 5})), ISSUER) as client:
        answers = await asyncio.gather(
            *(client.post("/token", data={**form, "client_id": "spa"}) for _ in range(4))
        )
    assert [answer.status_code for answer in answers] == [200] * 4
    assert all("refresh_token" in answer.json() for answer in answers)


async def test_logs_carry_audit_lines_and_never_a_secret(tmp_path, caplog):
    settings = make_settings(tmp_path)
    password = "pw-" + random_secrets.token_hex(8)
    create_user(settings, "alice", password)
    secret = create_client(settings, "app", ("password", "refresh_token")).secret
    assert secret
    with caplog.at_level(logging.DEBUG):
        async with running(create_app(settings), ISSUER, client_ip="192.0.2.44") as client:
            ok = await client.post(
                "/token",
                data={"username": "alice", "password": password, "grant_type": "password"},
                auth=("app", secret),
            )
            await login(client, "alice", password + "x")
            tokens = ok.json()
            await client.post(
                "/token",
                data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                auth=("app", secret),
            )
            await client.post(
                "/revoke", data={"token": tokens["access_token"]}, auth=("app", secret)
            )
    text = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    for sensitive in (password, secret, tokens["access_token"], tokens["refresh_token"]):
        assert sensitive not in text
    audit = [r.getMessage() for r in caplog.records if r.name == "issuer.audit"]
    assert any("login succeeded" in m and "alice" in m and "192.0.2.44" in m for m in audit)
    assert any("login failed" in m and "alice" in m and "192.0.2.44" in m for m in audit)
    assert any("revoked" in m for m in audit)


async def test_https_issuer_refuses_to_start_with_the_demo_account(tmp_path):
    settings = make_settings(tmp_path, url="https://auth.example.com")
    create_user(settings, DEMO_USERNAME, DEMO_PASSWORD)
    app = create_app(settings)
    with pytest.raises(RuntimeError, match="demo account"):
        async with app.router.lifespan_context(app):
            pass
    # As the refusal says: disabled (or given a new password), the account keeps nobody out.
    change_user(settings, DEMO_USERNAME, disabled=True)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pass


async def test_http_issuer_starts_with_the_demo_account(tmp_path):
    settings = make_settings(tmp_path)
    create_user(settings, DEMO_USERNAME, DEMO_PASSWORD)
    async with running(create_app(settings), ISSUER) as client:
        assert (await login(client, DEMO_USERNAME, DEMO_PASSWORD)).status_code == 200


# -- the outside audit: addresses, client lock-out, every endpoint limited, hung Redis ----------


async def test_a_forged_forwarded_for_neither_escapes_the_limit_nor_reaches_the_audit_log(
    tmp_path, clock, caplog
):
    settings = make_settings(tmp_path, rate_limit_per_ip=5, login_free_failures=10_000)
    create_user(settings, "alice", "wonderland1")
    async with (
        served(create_app(settings, clock=clock, timer=clock)) as asgi,
        client_for(asgi, "127.0.0.1") as c,
    ):
        with caplog.at_level(logging.INFO, logger="issuer.audit"):
            statuses = [
                (
                    await c.post(
                        "/token",
                        data={"username": "alice", "password": "guess-guess"},
                        headers={"X-Forwarded-For": f"198.51.100.{i}"},
                    )
                ).status_code
                for i in range(20)
            ]
    assert statuses == [400] * 5 + [429] * 15
    audit = [r.getMessage() for r in caplog.records if r.name == "issuer.audit"]
    assert audit and all("ip=127.0.0.1" in line for line in audit)
    assert not any("198.51.100" in line for line in audit)


async def test_behind_a_trusted_proxy_each_client_address_has_its_own_limit(
    tmp_path, clock, caplog
):
    settings = make_settings(
        tmp_path, rate_limit_per_ip=2, login_free_failures=10_000, trusted_proxies=["127.0.0.1"]
    )
    create_user(settings, "alice", "wonderland1")
    async with (
        served(create_app(settings, clock=clock, timer=clock)) as asgi,
        client_for(asgi, "127.0.0.1") as c,
    ):
        with caplog.at_level(logging.INFO, logger="issuer.audit"):
            for i in range(4):
                for _ in range(2):
                    response = await c.post(
                        "/token",
                        data={"username": "alice", "password": "guess-guess"},
                        headers={"X-Forwarded-For": f"1.1.1.1, 198.51.100.{i}"},
                    )
                    assert response.status_code == 400
    assert any("ip=198.51.100.3" in r.getMessage() for r in caplog.records)


async def test_wrong_secrets_naming_a_client_never_lock_that_client_out(tmp_path, clock):
    settings = make_settings(tmp_path, rate_limit_per_client=20, rate_limit_per_ip=100_000)
    secret = create_client(settings, "reports", ("client_credentials",)).secret
    create_client(settings, "spa", ("password",), public=True)
    create_user(settings, "alice", "wonderland1")
    async with served(create_app(settings, clock=clock, timer=clock)) as asgi:
        async with client_for(asgi, "203.0.113.66") as attacker:
            statuses = [
                (
                    await attacker.post(
                        "/token", data={"grant_type": "client_credentials"}, auth=("reports", "x")
                    )
                ).status_code
                for _ in range(605)
            ]
        # From an address not yet locked out, or none of these would reach the client.
        async with client_for(asgi, "203.0.113.67") as attacker:
            for _ in range(605):  # a public client has no secret to prove: nothing to spend
                await attacker.post("/token", data={"grant_type": "password", "client_id": "spa"})
        # The flooder locked itself out after the failed-authentication cap...
        assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}
        async with client_for(asgi, "192.0.2.10") as real:
            # ...while the client it named, and the public client's users, carry on.
            granted = await real.post(
                "/token", data={"grant_type": "client_credentials"}, auth=("reports", secret)
            )
            assert granted.status_code == 200
            login_spa = await real.post(
                "/token",
                data={"username": "alice", "password": "wonderland1", "client_id": "spa"},
            )
            assert login_spa.status_code == 200


@pytest.mark.parametrize("endpoint", ["/introspect", "/revoke"])
async def test_introspect_and_revoke_are_limited_per_address(tmp_path, clock, endpoint):
    settings = make_settings(tmp_path, rate_limit_per_ip=100_000)
    create_client(settings, "reports", ("client_credentials",))
    async with (
        served(create_app(settings, clock=clock, timer=clock)) as asgi,
        client_for(asgi, "10.9.9.9") as c,
    ):
        statuses = [
            (await c.post(endpoint, data={"token": "x"}, auth=("reports", "wrong"))).status_code
            for _ in range(150)
        ]
    assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}


async def test_introspect_and_revoke_share_the_per_address_request_limit(tmp_path, clock):
    settings = make_settings(tmp_path, rate_limit_per_ip=4)
    async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as client:
        statuses = [
            (await client.post(path, data={"token": "x"})).status_code
            for path in ("/introspect", "/revoke", "/token") * 2
        ]
    assert statuses[:4] == [401, 401, 400, 401] and statuses[4:] == [429, 429]


@contextlib.asynccontextmanager
async def hung_redis() -> AsyncIterator[str]:
    """A server that accepts connections and never answers, like a wedged Redis."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_a_hung_redis_costs_one_timeout_then_the_fallback(tmp_path, clock):
    async with hung_redis() as url:
        settings = make_settings(tmp_path, redis_url=url, rate_limit_per_ip=3)
        create_user(settings, "alice", "wonderland1")
        async with running(create_app(settings, clock=clock, timer=clock), ISSUER) as client:
            durations, statuses = [], []
            for _ in range(4):
                start = time.perf_counter()
                statuses.append((await login(client)).status_code)
                durations.append(time.perf_counter() - start)
    # The audit saw 0.5 s per Redis call, 3.7 s a login; now one timeout, then memory.
    assert durations[0] < 1.5, durations
    assert max(durations[1:]) < 0.3, durations
    assert statuses == [200, 200, 200, 429]  # the limits still hold, per process


async def test_a_hung_redis_under_concurrent_load_costs_one_timeout_then_one_probe(clock):
    async with hung_redis() as url:
        redis_client = connect_redis(url)
        assert redis_client is not None
        store = make_store(redis_client, clock=clock)

        async def timed_burst() -> list[float]:
            async def one(number: int) -> float:
                start = time.perf_counter()
                await store.incr(f"ip:{number}", 60)
                return time.perf_counter() - start

            return sorted(await asyncio.gather(*(one(number) for number in range(20))))

        try:
            # Calls in flight when Redis hangs wait out their one timeout, together.
            assert (await timed_burst())[-1] < 1.5
            clock.advance(1.1)  # past the first retry: one call probes, nineteen do not wait
            probing = await timed_burst()
            assert probing[-1] >= 0.4 and probing[-2] < 0.2, probing
            clock.advance(1.1)  # the probe failed: the next retry is 2 s after it, not 1
            assert (await timed_burst())[-1] < 0.2
            clock.advance(1.0)
            probing = await timed_burst()
            assert probing[-1] >= 0.4 and probing[-2] < 0.2, probing
        finally:
            await redis_client.aclose()


async def test_audit_lines_name_the_account_never_the_text_sent(tmp_path, caplog):
    # The audit: the raw name went into the line, so another spelling escaped a search by
    # account, a crafted one added a forged `ip=`, and a 60,000-character one a 60 kB line.
    settings = make_settings(tmp_path)
    create_user(settings, "alice", "wonderland1")
    forged = "x' ip=6.6.6.6 client_id=admin"
    with caplog.at_level(logging.INFO, logger="issuer.audit"):
        async with running(create_app(settings), ISSUER, client_ip="192.0.2.44") as client:
            assert (await login(client, "\uff21LICE", "wonderland1")).status_code == 200
            await login(client, "ALICE", "wrong-password")
            await login(client, forged, "wrong-password")
            await login(client, "y" * 600, "wrong-password")
    audit = [r.getMessage() for r in caplog.records if r.name == "issuer.audit"]
    assert "login succeeded username='alice' ip=192.0.2.44 client_id=public" in audit
    assert "login failed username='alice' ip=192.0.2.44" in audit
    failed = [m for m in audit if m.startswith("login failed")]
    # Each failure has its line: a name no account has is told by its length alone.
    assert failed == [
        "login failed username='alice' ip=192.0.2.44",
        f"login failed username='<no such name, {len(forged)} characters>' ip=192.0.2.44",
        "login failed username='<no such name, 600 characters>' ip=192.0.2.44",
    ], failed
    assert all(m.count("ip=") == 1 and len(m) < 200 for m in failed), failed
    assert not [m for m in audit if "6.6.6.6" in m or "y" * 100 in m]


async def test_failed_client_authentications_are_audited(tmp_path, caplog):
    # A guessed or stale client secret left no audit line (only logins did): a brute force
    # on a client's secret showed only as 429s. The line names the client as registered.
    settings = make_settings(tmp_path)
    create_client(settings, "reports", ("client_credentials",))
    forged = "x ip=6.6.6.6"
    with caplog.at_level(logging.INFO, logger="issuer.audit"):
        async with running(create_app(settings), ISSUER, client_ip="192.0.2.44") as client:
            for endpoint, auth in (
                ("/token", ("reports", "wrong")),
                ("/introspect", ("reports", "wrong")),
                ("/revoke", (forged, "wrong")),
            ):
                form = {"grant_type": "client_credentials", "token": "t"}
                assert (await client.post(endpoint, data=form, auth=auth)).status_code == 401
    audit = [r.getMessage() for r in caplog.records if r.name == "issuer.audit"]
    failed = [m for m in audit if m.startswith("client authentication failed")]
    assert failed == [
        "client authentication failed client_id=reports method=client_secret_basic ip=192.0.2.44",
    ] * 2 + [
        "client authentication failed client_id=<no such client, 12 characters> "
        "method=client_secret_basic ip=192.0.2.44"
    ]
    assert "wrong" not in "".join(failed)
