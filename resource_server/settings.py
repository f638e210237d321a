"""The resource server's one settings object, read from ``RS_*`` environment variables."""

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from resource_server.deps import MAX_HEADER_CHARS
from resource_server.jwks import CachePolicy
from resource_server.urls import (
    require_issuer_identifier,
    require_one_word,
    require_safe_url,
    require_web_origins,
)
from resource_server.verify import DEFAULT_CACHE_SIZE, DEFAULT_MAX_TOKEN_BYTES, MAX_LEEWAY

# The key set's defaults, named once in `CachePolicy`.
_POLICY = CachePolicy()


class Settings(BaseSettings):
    """Resource server configuration; tests pass values directly."""

    model_config = SettingsConfigDict(env_prefix="RS_", frozen=True)

    # Plain http is always allowed for loopback issuers; elsewhere only when set. (First: the
    # URLs below are checked against it.)
    allow_insecure_http: bool = False
    issuer_url: str = "http://127.0.0.1:8000"
    jwks_url: str | None = None
    audience: str = Field("api", min_length=1)
    # Durations are finite: `inf` was taken, and broke the outage warning that counts down.
    jwks_min_ttl: float = Field(_POLICY.min_ttl, ge=0, allow_inf_nan=False)
    jwks_max_ttl: float = Field(_POLICY.max_ttl, gt=0, allow_inf_nan=False)
    jwks_cooldown: float = Field(_POLICY.cooldown, ge=0, allow_inf_nan=False)
    jwks_stale_if_error: float = Field(_POLICY.stale_if_error, ge=0, allow_inf_nan=False)
    # The overall deadline of one JWKS fetch, and so the longest a request waits for keys.
    jwks_timeout: float = Field(_POLICY.timeout, gt=0, allow_inf_nan=False)
    # How often a held key set is revalidated (a conditional GET); 0 turns it off.
    jwks_revalidate: float = Field(_POLICY.revalidate, ge=0, allow_inf_nan=False)
    leeway: int = Field(MAX_LEEWAY, ge=0, le=MAX_LEEWAY)
    # At most what the Authorization header may carry at all (`deps.MAX_HEADER_CHARS`).
    max_token_bytes: int = Field(DEFAULT_MAX_TOKEN_BYTES, gt=0, le=MAX_HEADER_CHARS)
    token_cache_size: int = Field(DEFAULT_CACHE_SIZE, ge=0)
    # Logs: JSON lines (default) or human-readable text (`make run`).
    log_format: Literal["json", "text"] = "json"
    # The public client the API docs (Swagger UI) sign in with at the issuer.
    docs_client_id: str = Field("api-docs", min_length=1)
    # Browser origins allowed to call this API from JavaScript (JSON list).
    cors_origins: list[str] = []

    # The next two are `CachePolicy`'s own rules, said here of the variables that set them,
    # so that an operator reads which one to change.
    @field_validator("jwks_max_ttl")
    @classmethod
    def _not_below_the_minimum(cls, value: float, info: ValidationInfo) -> float:
        # Clamped silently, RS_JWKS_MAX_TTL=30 with the default minimum meant 60 s.
        minimum = info.data.get("jwks_min_ttl")
        if minimum is not None and value < minimum:
            raise ValueError(f"must not be below RS_JWKS_MIN_TTL ({minimum:g} s)")
        return value

    @field_validator("jwks_stale_if_error")
    @classmethod
    def _a_fetched_set_is_usable(cls, value: float, info: ValidationInfo) -> float:
        # Both 0: a key set sent with `max-age=0` (or `no-store`) expired as it arrived and
        # could not be used even by the request that fetched it: a 503 for every request.
        if value == 0 and info.data.get("jwks_min_ttl") == 0:
            raise ValueError("must not be 0 when RS_JWKS_MIN_TTL is 0 (no key set would be usable)")
        return value

    @field_validator("jwks_url", mode="before")
    @classmethod
    def _discovered_when_empty(cls, value: object) -> object:
        return None if value == "" else value  # `RS_JWKS_URL=` in a compose file: not set

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return require_web_origins(value)

    @field_validator("audience")
    @classmethod
    def _one_word(cls, value: str) -> str:
        return require_one_word(value)

    @field_validator("issuer_url")
    @classmethod
    def _issuer_identifier(cls, value: str) -> str:
        # The only `iss` accepted: one the issuer could not have (a query, user information,
        # an upper-case scheme) would refuse every token, for ever.
        require_issuer_identifier(value)
        return value

    @field_validator("issuer_url", "jwks_url")
    @classmethod
    def _safe_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Refused at start, as the key set would refuse it at its first fetch.
        if value is not None:
            insecure = bool(info.data.get("allow_insecure_http"))
            require_safe_url(value, insecure, override="RS_ALLOW_INSECURE_HTTP=1")
        return value

    def cache_policy(self) -> CachePolicy:
        """The key set's policy from these settings."""
        return CachePolicy(
            min_ttl=self.jwks_min_ttl,
            max_ttl=self.jwks_max_ttl,
            cooldown=self.jwks_cooldown,
            stale_if_error=self.jwks_stale_if_error,
            timeout=self.jwks_timeout,
            revalidate=self.jwks_revalidate,
        )
