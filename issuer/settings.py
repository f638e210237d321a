"""The issuer's one settings object, read from ``ISSUER_*`` environment variables."""

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from issuer.keys import RotationPolicy
from issuer.keystore import KeyStore


class Settings(BaseSettings):
    """Issuer configuration; tests pass values directly instead of using the environment."""

    model_config = SettingsConfigDict(env_prefix="ISSUER_", frozen=True)

    url: str = "http://127.0.0.1:8000"
    keys_dir: Path = Path("keys")
    database_url: str = "sqlite:///./issuer.db"
    access_token_ttl: int = Field(900, gt=0, le=86400)
    # Refresh tokens: a session's absolute lifetime, and how long one may lie unused.
    refresh_token_ttl: int = Field(30 * 86400, gt=0)
    refresh_token_idle_ttl: int = Field(7 * 86400, gt=0)
    audience: str = "api"
    jwks_max_age: int = Field(600, ge=0, le=86400)
    # OWASP's floor for bcrypt is 10; tests lower it through this setting, never in code.
    bcrypt_rounds: int = Field(12, ge=4, le=31)
    # RFC 9068 requires `client_id`; tokens from a request that names no client carry this one.
    default_client_id: str = "public"
    # How often a running issuer looks for a changed key set on disk, seconds.
    keys_poll_interval: float = Field(1.0, gt=0, le=60)
    # When set, private keys are written encrypted with it (and read with it).
    keys_passphrase: SecretStr | None = None
    # Added to every rotation wait: verifiers' `exp` leeway plus the key-reload poll.
    rotation_leeway: int = Field(120, ge=0)

    def rotation_policy(self) -> RotationPolicy:
        return RotationPolicy(
            access_token_ttl=self.access_token_ttl,
            jwks_max_age=self.jwks_max_age,
            leeway=self.rotation_leeway,
        )

    def key_store(self) -> KeyStore:
        passphrase = self.keys_passphrase.get_secret_value() if self.keys_passphrase else None
        return KeyStore(self.keys_dir, passphrase=passphrase)

    @field_validator("url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        # `iss` must match byte for byte (RFC 8414 section 3.3), so normalise once here.
        return value.rstrip("/")
