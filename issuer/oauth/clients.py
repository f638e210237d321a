"""Registered OAuth clients: the table, secret hashing and the repository."""

import functools
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, Integer, String, Text, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker
from starlette.concurrency import run_in_threadpool

from issuer.oauth.redirect_uris import RedirectUriError, check_registrable
from issuer.oauth.scopes import format_scope, parse_scope
from issuer.storage.engine import Base, too_long

GRANT_TYPES = ("authorization_code", "password", "client_credentials", "refresh_token")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._~-]{1,100}")
_SECRET_SCHEME = "hmac-sha256"
_STORED_SECRET = re.compile(rf"{_SECRET_SCHEME}\$([^$]*)\$([0-9a-f]{{64}})")

log = logging.getLogger(__name__)


class ClientError(ValueError):
    """A client cannot be registered as asked."""


class ClientExists(ClientError):
    """The client_id is taken (possibly by a registration that raced ours)."""


def _check_audiences(option: str, audiences: tuple[str, ...]) -> None:
    """Refuse an audience the space-separated column could not give back as it was given:
    "" would vanish and "a b" come back as two (str.split splits on any whitespace)."""
    for audience in audiences:
        if not audience:
            raise ClientError(f"{option}: an audience must not be empty")
        if any(c.isspace() or not c.isprintable() for c in audience):
            raise ClientError(
                f"{option}: audience {audience!r} must be one word, without spaces or control "
                "characters (repeat the option for several)"
            )


def _check_grant_options(
    grant_types: tuple[str, ...],
    redirect_uris: tuple[str, ...],
    post_logout_redirect_uris: tuple[str, ...],
    require_consent: bool,
) -> None:
    """Refuse options no grant of the client would ever read: stored, they only mislead."""
    if "authorization_code" not in grant_types:
        for option, given in (
            ("--redirect-uri", redirect_uris),
            ("--post-logout-redirect-uri", post_logout_redirect_uris),
            ("--require-consent", require_consent),
        ):
            if given:
                raise ClientError(
                    f"{option} needs the authorization_code grant (--grant authorization_code)"
                )
    # Only these two start a refresh token family; without one no refresh token is ever issued.
    if "refresh_token" in grant_types and not {"authorization_code", "password"} & set(grant_types):
        raise ClientError(
            "the refresh_token grant needs authorization_code or password beside it: no other "
            "grant issues the first refresh token"
        )


def registrable(client_id: str) -> bool:
    """Whether `client_id` is one a client can be registered under."""
    # fullmatch: "$" would also accept a trailing newline.
    return _CLIENT_ID.fullmatch(client_id) is not None


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    # None for a public client; else "hmac-sha256$<salt>$<digest>" (never the secret itself).
    secret_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    grant_types: Mapped[str] = mapped_column(String(200), default="")
    scopes: Mapped[str] = mapped_column(String(2000), default="")
    audiences: Mapped[str] = mapped_column(String(2000), default="")
    # The audiences this client serves as a resource server: it may introspect their tokens.
    resource_audiences: Mapped[str] = mapped_column(String(2000), default="")
    access_token_ttl: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Browser and native apps: exact redirect URIs (space-separated; see redirect_uris.py).
    redirect_uris: Mapped[str] = mapped_column(Text, default="")
    post_logout_redirect_uris: Mapped[str] = mapped_column(Text, default="")
    require_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: datetime.now(UTC)
    )

    @property
    def is_public(self) -> bool:
        return self.secret_hash is None

    def token_ttl(self, issuer_ttl: int) -> int:
        """Its access tokens' lifetime: a client may shorten, never lengthen, the issuer's
        (which key retirement is paced by)."""
        return min(self.access_token_ttl or issuer_ttl, issuer_ttl)

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(parse_scope(self.scopes))

    @property
    def audience_list(self) -> list[str]:
        return self.audiences.split()

    def serves(self, audience: str | list[str]) -> bool:
        """Whether this client is a resource server for (one of) `audience`."""
        served = set(self.resource_audiences.split())
        return bool(served.intersection([audience] if isinstance(audience, str) else audience))

    @property
    def display_name(self) -> str:
        return self.name or self.client_id

    @property
    def redirect_uri_list(self) -> list[str]:
        return self.redirect_uris.split()

    @property
    def post_logout_redirect_uri_list(self) -> list[str]:
        return self.post_logout_redirect_uris.split()

    def allows(self, grant_type: str) -> bool:
        return grant_type in self.grant_types.split()


@dataclass(frozen=True)
class NewClient:
    client: Client
    secret: str | None  # shown once, never stored


def hash_secret(secret: str) -> str:
    """A salted HMAC-SHA-256 of a generated secret.

    Our secrets carry 256 bits of randomness, so a fast keyed hash is as safe as bcrypt here
    (no dictionary to try) and keeps client authentication cheap.
    """
    salt = secrets.token_hex(16)
    digest = hmac.new(salt.encode(), secret.encode(), hashlib.sha256).hexdigest()
    return f"{_SECRET_SCHEME}${salt}${digest}"


def secret_matches(secret: str, stored: str | None, client_id: str = "") -> bool:
    """Constant-time check of `secret` against a stored hash; False for public clients, and
    for a stored value not in the form `hash_secret` writes (logged: only an operator can
    mend it, by registering the client again)."""
    keyed = _keyed_hash(stored) if stored is not None else None
    if stored is not None and keyed is None:
        log.error(
            "stored secret hash of client %r is unreadable; it cannot authenticate", client_id
        )
    # Always hash (with no hash to check against, keyed with an empty salt): the same work
    # whether the client exists or not.
    salted, digest = keyed or _NOTHING_STORED
    candidate = salted.copy()
    candidate.update(secret.encode())
    return hmac.compare_digest(candidate.hexdigest(), digest)


# An empty salt and an empty digest, which no 64-character hex digest matches.
_NOTHING_STORED = (hmac.new(b"", digestmod=hashlib.sha256), "")


@functools.lru_cache(maxsize=1024)  # a client's stored hash, read on each of its requests
def _keyed_hash(stored: str) -> tuple["hmac.HMAC", str] | None:
    """The HMAC keyed with the stored salt (copied per check: keying it anew each time was
    a third of the check's cost) and the digest to compare with; None if unreadable."""
    match = _STORED_SECRET.fullmatch(stored)
    if match is None:
        return None
    salt, digest = match.groups()
    return hmac.new(salt.encode(), digestmod=hashlib.sha256), digest


class ClientRepository:
    """Reads and registers clients."""

    def __init__(self, sessions: sessionmaker[Session], unregistered_id: str | None = None):
        self._sessions = sessions
        # The client_id of tokens issued with no client (ISSUER_DEFAULT_CLIENT_ID, given by
        # the composition root; none for the scripts, which never ask `still_serves`).
        self._unregistered_id = unregistered_id

    async def still_serves(self, client_id: str) -> bool:
        """Whether the client a token was issued to is still registered and enabled (read
        now, not from the token endpoint's cache); a token issued with no client names none
        that could be gone. Its tokens no longer introspect active nor open /userinfo."""
        if client_id == self._unregistered_id:
            return True
        if not registrable(client_id):
            return False
        client = await run_in_threadpool(self.get, client_id)
        return client is not None and not client.disabled

    def get(self, client_id: str) -> Client | None:
        with self._sessions() as session:
            return session.scalar(select(Client).where(Client.client_id == client_id))

    def set_disabled(self, client_id: str, disabled: bool) -> None:
        """Disable (or enable again) a client: a disabled one cannot authenticate or sign
        users in, and its tokens introspect inactive. Clients are never deleted, so no new
        registration can take an old one's id (and with it its tokens)."""
        self._update(client_id, disabled=disabled)

    def new_secret(self, client_id: str) -> str:
        """Replace a confidential client's secret; the new one is shown once. The old one
        stops working as soon as each issuer's client cache (a few seconds) has let it go."""
        secret = secrets.token_urlsafe(32)
        self._update(client_id, secret_hash=hash_secret(secret))
        return secret

    def _update(self, client_id: str, **values: object) -> None:
        with self._sessions() as session:
            session.execute(update(Client).where(Client.client_id == client_id).values(**values))
            session.commit()

    def create(
        self,
        client_id: str,
        grant_types: tuple[str, ...],
        *,
        scope: str = "",
        audiences: tuple[str, ...] = (),
        public: bool = False,
        name: str = "",
        access_token_ttl: int | None = None,
        resource_audiences: tuple[str, ...] = (),
        redirect_uris: tuple[str, ...] = (),
        post_logout_redirect_uris: tuple[str, ...] = (),
        require_consent: bool = False,
    ) -> NewClient:
        """Register a client; a confidential one gets a new 256-bit secret."""
        if not registrable(client_id):
            raise ClientError(
                "client_id must be 1-100 characters of ASCII letters, digits and . _ ~ -"
            )
        unknown = [g for g in grant_types if g not in GRANT_TYPES]
        if unknown:
            raise ClientError(f"unknown grant type: {', '.join(unknown)}")
        if public and "client_credentials" in grant_types:
            raise ClientError("a public client cannot use client_credentials (it has no secret)")
        if public and resource_audiences:
            # /introspect authenticates with a client secret (require_secret).
            raise ClientError(
                "a public client cannot act as a resource server: it has no secret to "
                "introspect with"
            )
        if access_token_ttl is not None and access_token_ttl <= 0:
            raise ClientError("access token TTL must be positive")
        _check_audiences("--audience", audiences)
        _check_audiences("--resource-server", resource_audiences)
        _check_grant_options(grant_types, redirect_uris, post_logout_redirect_uris, require_consent)
        if "authorization_code" in grant_types and not redirect_uris:
            raise ClientError("the authorization_code grant needs at least one --redirect-uri")
        try:
            for uri in (*redirect_uris, *post_logout_redirect_uris):
                check_registrable(uri)
        except RedirectUriError as exc:
            raise ClientError(str(exc)) from None
        secret = None if public else secrets.token_urlsafe(32)
        client = Client(
            client_id=client_id,
            secret_hash=None if secret is None else hash_secret(secret),
            name=name,
            grant_types=" ".join(dict.fromkeys(grant_types)),
            scopes=format_scope(parse_scope(scope)),
            audiences=" ".join(audiences),
            resource_audiences=" ".join(resource_audiences),
            access_token_ttl=access_token_ttl,
            redirect_uris=" ".join(dict.fromkeys(redirect_uris)),
            post_logout_redirect_uris=" ".join(dict.fromkeys(post_logout_redirect_uris)),
            require_consent=require_consent,
        )
        if fields := too_long(client):
            raise ClientError(f"too long for a client: {', '.join(fields)}")
        with self._sessions() as session:
            session.add(client)
            try:
                session.commit()
            except IntegrityError:
                raise ClientExists(f"client {client_id!r} already exists") from None
        return NewClient(client, secret)


class CachedClients:
    """Clients by id, remembered for a few seconds: token issuance needs no query per request.

    A disabled or deleted client keeps working for at most `ttl` seconds; unknown ids are
    not remembered, so a flood of random ids cannot grow the cache, and ids no client can be
    registered under are not even looked up (a NUL in one is an error on PostgreSQL).
    """

    def __init__(
        self,
        repository: ClientRepository,
        ttl: float = 5.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        reserved_id: str | None = None,
    ):
        self._repository = repository
        # The client_id of tokens issued with no client: never a registered client, even one
        # registered under it before the name was refused (it would own every such token).
        self._reserved_id = reserved_id
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[Client, float]] = {}

    async def get(self, client_id: str) -> Client | None:
        if client_id == self._reserved_id:
            return None
        hit = self._entries.get(client_id)
        if hit is not None and hit[1] > self._clock():
            return hit[0]
        if not registrable(client_id):
            return None
        client = await run_in_threadpool(self._repository.get, client_id)
        if client is not None:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[client_id] = (client, self._clock() + self._ttl)
        return client
