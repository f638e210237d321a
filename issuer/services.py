"""The composition root: every engine, store and service the issuer runs on, built from Settings.

`open_services` (entered by the app's lifespan) builds the running issuer from the pieces in
`issuer.builders`, which the scripts reuse so that a script treats the schema and the key
store exactly as the issuer does. Nothing else in the issuer builds engines or stores.
"""

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from issuer.accounts.demo import refuse_demo_account
from issuer.accounts.passwords import PasswordHasher
from issuer.accounts.users import UserRepository
from issuer.builders import key_store, throttle_policy
from issuer.keys import events as key_events
from issuer.keys.ring import KeyRing
from issuer.limits.counters import make_store
from issuer.limits.throttle import Throttle
from issuer.metrics import IssuerMetrics
from issuer.oauth.client_auth import ClientAuthenticator
from issuer.oauth.clients import CachedClients, ClientRepository
from issuer.oauth.codes import AuthorizationCodes
from issuer.oauth.grants import IssuancePolicy, TokenEndpoint
from issuer.oauth.introspection import IntrospectionEndpoint
from issuer.oauth.metadata import MetadataCache
from issuer.oauth.password_login import PasswordLogin
from issuer.oauth.refresh_tokens import RefreshTokenStore
from issuer.oauth.revocation import RevocationEndpoint
from issuer.oauth.revoked_tokens import RevokedTokens
from issuer.oauth.tokens import TokenSigner
from issuer.oidc.authorize import AuthorizationEndpoint
from issuer.oidc.consents import Consents
from issuer.oidc.id_token_hints import IdTokenHints
from issuer.oidc.logout import Logout
from issuer.oidc.sessions import BrowserSessions
from issuer.oidc.userinfo import UserinfoEndpoint
from issuer.settings import Settings
from issuer.storage.engine import make_engine, make_sessions
from issuer.storage.redis_client import connect_redis
from issuer.storage.schema import prepare
from resource_server.verify import Verifier
from servicekit.threads import WorkerThreads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """What the routes use, built once per app by `open_services`."""

    settings: Settings
    engine: Engine
    keyring: KeyRing
    metadata: MetadataCache
    tokens: TokenEndpoint
    revocation: RevocationEndpoint
    introspection: IntrospectionEndpoint
    authorization: AuthorizationEndpoint
    logins: PasswordLogin
    throttle: Throttle
    browser_sessions: BrowserSessions
    userinfo: UserinfoEndpoint
    logout: Logout
    metrics: IssuerMetrics


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings,
    metrics: IssuerMetrics,
    clock: Callable[[], float] = time.time,
    timer: Callable[[], float] = time.monotonic,
) -> AsyncIterator[Services]:
    """Open everything the issuer needs; everything opened is closed again, also on failure.
    `timer` runs the in-process rate limits and the Redis breaker (see `create_app`)."""
    async with contextlib.AsyncExitStack() as resources:
        await run_in_threadpool(_prepare_schema, settings.database_url, settings.database_timeout)
        engine = make_engine(settings.database_url, settings.database_timeout)
        resources.callback(engine.dispose)
        sessions = make_sessions(engine)
        keyring = KeyRing(key_store(settings, engine))
        metrics.watch_keyring(keyring)
        hasher = PasswordHasher(settings.bcrypt_rounds, settings.hash_workers, settings.hash_queue)
        resources.callback(hasher.close)
        users = UserRepository(sessions)
        hasher.expect_stored(await run_in_threadpool(users.hash_costs))
        if settings.url.startswith("https://"):
            await run_in_threadpool(refuse_demo_account, users, hasher)
        redis_client = connect_redis(settings.redis_url)
        if redis_client is not None:
            resources.push_async_callback(redis_client.aclose)
        counters = make_store(redis_client, settings.redis_prefix, timer)
        resources.push_async_callback(counters.aclose)
        throttle = Throttle(counters, throttle_policy(settings))
        registered = ClientRepository(sessions, settings.default_client_id)
        cached_clients = CachedClients(registered, reserved_id=settings.default_client_id)
        clients = ClientAuthenticator(cached_clients, throttle)
        logins = PasswordLogin(users, hasher, throttle, metrics)
        codes = AuthorizationCodes(sessions, settings.authorization_code_ttl)
        refresh_tokens = RefreshTokenStore(
            sessions, settings.refresh_token_ttl, settings.refresh_token_idle_ttl
        )
        revoked = RevokedTokens(sessions)
        hints = IdTokenHints(settings.url, keyring)
        # RSA signing releases the GIL: signing threads keep the loop free and use every core.
        threads = settings.signing_threads
        signing_pool = None
        if threads != 0:
            signing_pool = WorkerThreads(threads or os.cpu_count() or 1, name="signing")
            resources.callback(signing_pool.close)
        # Our own tokens are checked by the same Verifier the resource server uses.
        verifier = Verifier(keyring, settings.url, audience=None, leeway=0, clock=clock)
        tokens = TokenEndpoint(
            IssuancePolicy(
                settings.audience, settings.access_token_ttl, settings.default_client_id
            ),
            users=users,
            logins=logins,
            clients=clients,
            signer=TokenSigner(
                keyring, settings.url, settings.access_token_ttl, clock, signing_pool
            ),
            codes=codes,
            refresh_tokens=refresh_tokens,
            revoked=revoked,
            throttle=throttle,
            metrics=metrics,
            clock=clock,
        )
        metadata = MetadataCache(settings.url, sessions)
        await run_in_threadpool(metadata.rebuild)
        wake = asyncio.Event()
        _run_in_background(resources, keyring.watch(settings.keys_poll_interval, wake))
        if redis_client is not None:
            _run_in_background(
                resources, key_events.listen(redis_client, settings.redis_prefix, wake)
            )
        yield Services(
            settings=settings,
            engine=engine,
            keyring=keyring,
            metadata=metadata,
            tokens=tokens,
            revocation=RevocationEndpoint(
                throttle, clients, refresh_tokens, revoked, verifier, clock
            ),
            introspection=IntrospectionEndpoint(
                settings.url,
                throttle,
                clients,
                refresh_tokens,
                revoked,
                verifier,
                users,
                registered,
                clock,
            ),
            authorization=AuthorizationEndpoint(
                settings.url, cached_clients, users, Consents(sessions), codes, hints, clock
            ),
            logins=logins,
            throttle=throttle,
            browser_sessions=BrowserSessions(sessions, settings.session_ttl, clock),
            userinfo=UserinfoEndpoint(verifier, revoked, users, registered),
            logout=Logout(hints, cached_clients),
            metrics=metrics,
        )


def _prepare_schema(database_url: str, timeout: float) -> None:
    """Create the schema in an empty database (or refuse an older one) with no bound on its
    statements and lock waits: replicas starting beside one creating the schema wait for it
    however long it takes (under the 5 s statement timeout they gave up, a traceback). A
    server that does not answer still fails the start in `timeout`."""
    engine = make_engine(database_url, timeout, bound_statements=False)
    try:
        prepare(engine)
    finally:
        engine.dispose()


# Stopping a background task is bounded: redis-py's pub/sub can swallow a cancellation that
# lands while it subscribes (its issues 2028 and 2551), and a shutdown then waited for ever
# (a start that failed to bind its port never exited, SIGTERM included). After a first wait
# long enough for its own clean-up (closing a connection), it is cancelled again until it
# ends, for a few seconds, then left behind.
STOP_GRACE = 1.0
STOP_ATTEMPTS = 30
STOP_INTERVAL = 0.1


def _run_in_background(
    resources: contextlib.AsyncExitStack, work: Coroutine[Any, Any, None]
) -> None:
    """Run `work` until the resources close."""
    task = asyncio.get_running_loop().create_task(work)

    async def cancel() -> None:
        for attempt in range(STOP_ATTEMPTS):
            task.cancel()
            await asyncio.wait({task}, timeout=STOP_INTERVAL if attempt else STOP_GRACE)
            if task.done():
                break
        else:
            log.warning("a background task (%s) did not stop; leaving it", task.get_coro())
            return
        with contextlib.suppress(asyncio.CancelledError):
            await task

    resources.push_async_callback(cancel)
