"""Helpers shared by the tests: a fake clock, hand-built JWTs and an in-process app client."""

import asyncio
import atexit
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import FastAPI
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Receive, Scope, Send

from issuer.accounts.users import User
from issuer.admin import change_user
from issuer.keys.files import FileKeyStore
from issuer.oauth.password_login import PasswordLogin
from issuer.settings import Settings
from issuer.storage import schema
from issuer.storage.engine import make_engine, make_sessions
from resource_server.base64url import b64url_encode

_KEY_SET_TEMPLATE: list[Path] = []
# The machine's Redis; every test's keys carry a prefix of their own, deleted after.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def documented_python(page: str, after: str) -> str:
    """The first Python sample in `docs/<page>` after the words `after`, as written there."""
    text = (Path(__file__).parents[1] / "docs" / page).read_text()
    return text.split(after, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]


def fresh_key_set(directory: Path) -> Path:
    """A key set (an active and a next key) in `directory`, copied from one generated once
    per session: RSA key generation would otherwise dominate the suite's time."""
    if not _KEY_SET_TEMPLATE:
        template = Path(tempfile.mkdtemp(prefix="key-set-")) / "keys"
        FileKeyStore(template).generate()
        atexit.register(shutil.rmtree, template.parent, ignore_errors=True)
        _KEY_SET_TEMPLATE.append(template)
    shutil.copytree(_KEY_SET_TEMPLATE[0], directory)
    return directory


class FakeClock:
    """A clock tests advance instead of sleeping."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """Time passes at once (other tasks still get their turn): a sleep for this clock."""
        self.advance(seconds)
        await asyncio.sleep(0)


b64url = b64url_encode


def sign_jwt(
    private_key: rsa.RSAPrivateKey, header: dict[str, Any], claims: dict[str, Any] | bytes
) -> str:
    """An RS256 JWS over exactly the given header and claims, for crafting good and bad tokens."""
    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(payload)}"
    signature = private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def public_jwk(private_key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    numbers = private_key.public_key().public_numbers()

    def encode(value: int) -> str:
        return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    return {
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "alg": "RS256",
        "n": encode(numbers.n),
        "e": encode(numbers.e),
    }


@contextlib.asynccontextmanager
async def running(
    app: FastAPI, base_url: str = "http://testserver", client_ip: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan entered, and a client that talks to it in process."""
    async with served(app) as asgi:
        transport = httpx.ASGITransport(app=asgi, client=(client_ip, 50000))
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


@contextlib.asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[ASGIApp]:
    """The app with its lifespan entered, handing the lifespan's state to every request as
    an ASGI server does (httpx's in-process transport runs no lifespan)."""
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            await app({**scope, "state": dict(state or {})}, receive, send)

        yield with_state


def http_scope(
    method: str, path: str, headers: list[tuple[bytes, bytes]], host: str = "testserver"
) -> Scope:
    """An HTTP request's ASGI scope, for calling an app as a server would, message by
    message (a client that goes away, an error after the answer)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": (host, 80),
    }


def stalled_body(first: bytes) -> Callable[[], Awaitable[dict[str, Any]]]:
    """An ASGI receive that hands out `first`, says more is coming, and then sends nothing
    ever again: a client that declared a length and stopped sending."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": first, "more_body": True}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


async def call_asgi(app: ASGIApp, scope: Scope, body: bytes = b"") -> list[dict[str, Any]]:
    """Call `app` as a server would with one request of `body`; the messages it sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@contextlib.contextmanager
def db_session(database_url: str) -> Iterator[Session]:
    """A session on the issuer's database whose engine is disposed afterwards."""
    engine = make_engine(database_url)
    try:
        with make_sessions(engine)() as session:
            yield session
    finally:
        engine.dispose()


class TcpProxy:
    """A loopback TCP relay the test can cut and restore: a database that goes away."""

    def __init__(self, target_port: int):
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self._target_port
        )
        self._writers += [writer, upstream_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


class SpyProfile:
    """A PRECIS profile that notes the length of every value it is asked to enforce."""

    def __init__(self, real: Any):
        self.real = real
        self.calls: list[int] = []

    def enforce(self, value: str) -> str:
        self.calls.append(len(value))
        return str(self.real.enforce(value))


def sign_out_after_password_check(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, username: str, **change: Any
) -> None:
    """Every login of this test has its password checked, then `username` signed out
    everywhere by `change_user(**change)` (disabled, or a new password) before the login is
    recorded: the race of an operator at another replica, made certain."""
    verify = PasswordLogin.verify

    async def checked_then_signed_out(self: PasswordLogin, *args: str) -> User:
        user = await verify(self, *args)
        await asyncio.to_thread(change_user, settings, username, **change)
        return user

    monkeypatch.setattr(PasswordLogin, "verify", checked_then_signed_out)


def users_differing_only_in_case(engine: Engine) -> None:
    """A database at revision 0002 holding `bob` and `Bob`, which migration 0003 refuses."""
    schema.upgrade(engine, "0002")
    with engine.begin() as connection:
        for name in ("bob", "Bob"):
            connection.execute(
                text(
                    "INSERT INTO users (username, password_hash, scopes, disabled, created_at) "
                    "VALUES (:n, 'x', '', false, CURRENT_TIMESTAMP)"
                ),
                {"n": name},
            )
