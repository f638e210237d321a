"""The issuer's one settings object, read from ``ISSUER_*`` environment variables.

Data only: `issuer.services` builds engines, stores and services from it.
"""

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from redis.asyncio.connection import parse_url as parse_redis_url
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from resource_server.urls import require_issuer_identifier, require_one_word, require_web_origins

_TEN_YEARS = 10 * 365 * 86400


class Settings(BaseSettings):
    """Issuer configuration; tests pass values directly instead of using the environment."""

    model_config = SettingsConfigDict(env_prefix="ISSUER_", frozen=True)

    url: str = "http://127.0.0.1:8000"
    keys_dir: Path = Path("keys")
    database_url: str = "sqlite:///./issuer.db"
    # The longest a request waits on PostgreSQL (connecting, a statement, a lock) before it
    # is answered 503; seconds.
    database_timeout: float = Field(5.0, gt=0, le=300, allow_inf_nan=False)
    access_token_ttl: int = Field(900, gt=0, le=86400)
    # Refresh tokens: a session's absolute lifetime, and how long one may lie unused.
    refresh_token_ttl: int = Field(30 * 86400, gt=0, le=_TEN_YEARS)
    refresh_token_idle_ttl: int = Field(7 * 86400, gt=0, le=_TEN_YEARS)
    audience: str = Field("api", min_length=1)
    jwks_max_age: int = Field(600, ge=0, le=86400)
    # The JWKS max-age served for one jwks_max_age after a key is revoked (an incident).
    jwks_max_age_after_revocation: int = Field(60, ge=0, le=86400)
    # OWASP's floor for bcrypt is 10; tests lower it through this setting, never in code.
    bcrypt_rounds: int = Field(12, ge=4, le=31)
    # RFC 9068 requires `client_id`; tokens from a request that names no client carry this one.
    default_client_id: str = Field("public", min_length=1)
    # How often a running issuer looks for a changed key set (files or database), seconds.
    keys_poll_interval: float = Field(1.0, ge=0.05, le=60, allow_inf_nan=False)
    # Abuse resistance: limits (see issuer/limits/throttle.py) and the hashing bound.
    redis_url: str | None = None
    redis_prefix: str = Field("issuer:", min_length=1)
    # Bounded: Redis refuses an expiry past its clock's range (10**16 s was taken, and every
    # counter then failed over to the in-process store).
    rate_limit_window: int = Field(60, gt=0, le=_TEN_YEARS)
    rate_limit_per_ip: int = Field(60, gt=0)
    rate_limit_per_client: int = Field(600, gt=0)
    rate_limit_per_username: int = Field(20, gt=0)
    # Failed client authentications per address and window before the address is refused.
    rate_limit_client_auth_failures: int = Field(10, gt=0)
    # Proxies whose forwarding header is believed (addresses or CIDR ranges; default none).
    trusted_proxies: Annotated[list[str], NoDecode] = []
    forwarded_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    login_free_failures: int = Field(5, ge=0)
    login_backoff_max: int = Field(900, gt=0)
    hash_workers: int | None = Field(None, gt=0, le=256)
    hash_queue: int = Field(64, ge=0)
    # Threads that sign tokens for the grants served on the event loop (default: one per core;
    # 0 signs on the event loop itself).
    signing_threads: int | None = Field(None, ge=0, le=256)
    # Logs: JSON lines (default) or human-readable text (`make run`).
    log_format: Literal["json", "text"] = "json"
    # Browser origins allowed to call the issuer from JavaScript (every route; e.g. a browser
    # app's /token and /userinfo, the resource server's Swagger UI).
    cors_origins: list[str] = []
    # When set, private keys are written encrypted with it (and read with it).
    keys_passphrase: SecretStr | None = None
    # "files" (ISSUER_KEYS_DIR) or "database" (shared by replicas; needs the passphrase).
    keys_backend: Literal["files", "database"] = "files"
    # Added to every rotation wait: verifiers' `exp` leeway plus the key-reload poll.
    rotation_leeway: int = Field(120, ge=0, le=86400)
    # Browser sign-in: the name on the sign-in pages, how long a browser stays signed in at
    # the issuer, and how long an authorization code may wait for its exchange (at most 60 s).
    service_name: str = Field("Token service", min_length=1)
    session_ttl: int = Field(8 * 3600, gt=0, le=_TEN_YEARS)
    authorization_code_ttl: int = Field(60, gt=0, le=60)

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return require_web_origins(value)

    @field_validator("keys_passphrase")
    @classmethod
    def _passphrase_is_text(cls, value: SecretStr | None) -> SecretStr | None:
        # Bytes that are not UTF-8 arrive as surrogate escapes, which no key can be encrypted
        # or opened with: the scripts ended in a traceback (generate_keys.py after making the
        # keys directory), and the issuer at start.
        if value is not None:
            try:
                value.get_secret_value().encode()
            except UnicodeEncodeError:
                raise ValueError("not valid UTF-8") from None
        return value

    @field_validator("keys_backend")
    @classmethod
    def _database_keys_are_encrypted(cls, value: str, info: ValidationInfo) -> str:
        # Refused here, before anything opens the database (the key store refused it only
        # after the schema was made, and the issuer then ended in a traceback).
        if "keys_passphrase" not in info.data:
            return value  # a passphrase given but refused: said once, on its own line
        passphrase = info.data.get("keys_passphrase")
        if value == "database" and (passphrase is None or not passphrase.get_secret_value()):
            raise ValueError(
                "database needs ISSUER_KEYS_PASSPHRASE (the keys are stored encrypted with it)"
            )
        return value

    @field_validator("audience")
    @classmethod
    def _one_word(cls, value: str) -> str:
        return require_one_word(value)

    @field_validator("url")
    @classmethod
    def _issuer_identifier(cls, value: str) -> str:
        # Kept exactly as written: it is `iss`, which verifiers compare exactly.
        require_issuer_identifier(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "not a SQLAlchemy database URL (sqlite:///... or postgresql+psycopg://...)"
            ) from None
        backend = url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"{backend} is not supported: use SQLite or PostgreSQL")
        if backend == "sqlite" and url.database in (None, "", ":memory:"):
            # Each connection would see an empty database of its own, gone at exit.
            raise ValueError("an in-memory SQLite database keeps nothing: name a file")
        try:
            url.get_dialect().import_dbapi()
        except (ArgumentError, ImportError):  # an unknown driver name, or one not installed
            raise ValueError(
                f"the driver {url.drivername!r} is not available: use sqlite:///... or "
                "postgresql+psycopg://..."
            ) from None
        return value

    @field_validator("redis_url", mode="before")
    @classmethod
    def _redis_url(cls, value: object) -> object:
        if value == "":  # `ISSUER_REDIS_URL=${REDIS_URL:-}` in a compose file: not set
            return None
        if isinstance(value, str) and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        if isinstance(value, str):
            try:  # as the issuer's client reads it at start (a port, an IPv6 host, options)
                parse_redis_url(value)
            except ValueError as exc:
                raise ValueError(f"not a usable Redis URL: {exc}") from None
        return value

    @field_validator("keys_dir", mode="before")
    @classmethod
    def _named_keys_dir(cls, value: object) -> object:
        # Path("") is the current directory: an emptied variable would put the keys (and
        # their cleanup) wherever the process happens to run.
        if isinstance(value, str) and not value.strip():
            raise ValueError("must name a directory (unset it for the default, ./keys)")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_addresses(cls, value: object) -> object:
        # "10.0.0.1, 10.1.0.0/16": comma-separated, as an operator writes it in an env file.
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for item in value:
                ipaddress.ip_network(str(item), strict=False)  # ValueError names a bad entry
        return value
