"""Bounds of the services' settings: a value they could not run on is refused at start, with
one line naming its variable."""

import os
import re
import subprocess
import sys

import pytest
from pydantic import ValidationError

from issuer.settings import Settings
from servicekit.configuration import load_settings


def test_a_rotation_leeway_beyond_a_day_is_refused():
    # 10**20 s was accepted, and then failed as an OverflowError where a date was written.
    assert Settings(rotation_leeway=86400).rotation_leeway == 86400
    with pytest.raises(ValidationError, match="rotation_leeway"):
        Settings(rotation_leeway=10**20)


@pytest.mark.parametrize("name", ["refresh_token_ttl", "refresh_token_idle_ttl", "session_ttl"])
def test_lifetimes_are_bounded_to_ten_years(name):
    # The audit: ISSUER_REFRESH_TOKEN_TTL=400000000 passed, then every login answered 500.
    assert getattr(Settings(**{name: 10 * 365 * 86400}), name) == 10 * 365 * 86400
    with pytest.raises(ValidationError, match=name):
        Settings(**{name: 400_000_000})


@pytest.mark.parametrize("name", ["ISSUER_DATABASE_TIMEOUT", "ISSUER_KEYS_POLL_INTERVAL"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_a_duration_that_is_not_a_finite_number_is_said_so(monkeypatch, capsys, name, value):
    # "nan" was refused as "less than or equal to 300": true of no number, and no help.
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit):
        load_settings(Settings)
    assert capsys.readouterr().err.startswith(
        f"error: invalid setting {name}: Input should be a finite number"
    )


def test_database_timeout_is_positive_and_bounded():
    assert Settings().database_timeout == 5
    for bad in (0, -1, 301):
        with pytest.raises(ValidationError, match="database_timeout"):
            Settings(database_timeout=bad)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000", "https://idp.example.com/", "https://idp.example.com:443/tenant"],
)
def test_an_issuer_url_is_kept_exactly(url):
    assert Settings(url=url).url == url


@pytest.mark.parametrize(
    "url",
    [
        "HTTPS://idp.example.com",  # iss is compared exactly: written as verifiers write it
        "ftp://idp.example.com",
        "https://",
        "idp.example.com",
        "https://idp.example.com/?tenant=1",
        "https://idp.example.com/#top",
        "https://idp.example.com/?",  # an empty query is a query still
        "https://idp.example.com#",
        "https://admin@idp.example.com",
        "https://idp.example.com:port",
        "https://idp.example.com ",
        "https://idp.example.com\n",
        "https://idp.\texample.com",
        "https://idp.example.com/a b",
        "https://idp.example.com:0",
        # A URL is ASCII (RFC 3986): a browser sends this host as xn--bcher-kva.example, so
        # no sign-in form's Origin matched, and no other verifier writes `iss` this way.
        "https://bücher.example",
        "https://idp.example.com/tenänt",
    ],
)
def test_an_issuer_url_that_is_not_an_issuer_identifier_is_refused(url):
    with pytest.raises(ValidationError, match="url"):
        Settings(url=url)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("database_url", "nonsense"),
        ("database_url", "mysql://root@localhost/issuer"),
        ("redis_url", "redis//localhost:6379/0"),
        ("redis_url", "localhost:6379"),
        # Accepted, then the issuer's start-up ended in a traceback naming no variable
        # ("ValueError: Port could not be cast to integer value as 'abc'").
        ("redis_url", "redis://127.0.0.1:abc/0"),
        ("redis_url", "redis://[::1/0"),
        ("redis_url", "redis://localhost:99999/0"),
        ("redis_url", "redis://localhost/0?socket_timeout=soon"),
        ("audience", ""),
        ("default_client_id", ""),
        ("service_name", ""),
        ("redis_prefix", ""),
        ("keys_poll_interval", 1e-9),
        ("signing_threads", 100_000),
        ("hash_workers", 100_000),
    ],
)
def test_values_the_issuer_could_not_run_on_are_refused_at_start(name, value):
    # The audit: each was accepted and then failed later (a traceback at start-up, tokens
    # with "aud": "", an idle issuer at 81% CPU, minutes starting 100,000 threads).
    with pytest.raises(ValidationError, match=name):
        Settings(**{name: value})


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///./issuer.db",
        "postgresql+psycopg://postgres@127.0.0.1:5432/issuer",
        "postgresql://issuer@db/issuer",
    ],
)
def test_sqlite_and_postgresql_urls_are_accepted(url):
    assert Settings(database_url=url).database_url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "in-memory SQLite database keeps nothing"),
        ("sqlite:///", "in-memory SQLite database keeps nothing"),
        ("sqlite:///:memory:", "in-memory SQLite database keeps nothing"),
        ("postgresql+psycopg2://db/issuer", "the driver 'postgresql+psycopg2' is not available"),
        ("postgresql+nosuchdriver://db/issuer", "the driver 'postgresql+nosuchdriver' is not"),
        ("sqlite+pysqlcipher:///x.db", "the driver 'sqlite+pysqlcipher' is not available"),
    ],
)
def test_database_urls_the_issuer_could_not_use_are_refused(url, message):
    # The scripts audit: an in-memory URL said "created user" and kept nothing; a driver that
    # is not installed ended every script in a ModuleNotFoundError traceback.
    with pytest.raises(ValidationError, match=re.escape(message)):
        Settings(database_url=url)


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"RS_ISSUER_URL": "nonsense"}, "RS_ISSUER_URL: must be an http:// or https:// URL"),
        # The walkthrough: it named `allow_insecure_http`, a variable nobody could find.
        (
            {"RS_ISSUER_URL": "http://idp.example/"},
            "RS_ISSUER_URL: 'http://idp.example/' must use https (plain http is allowed for "
            "loopback hosts, or everywhere with RS_ALLOW_INSECURE_HTTP=1)",
        ),
        # The audit: issuer URLs no token can carry as `iss` were taken, and the verifier then
        # refused everything for ever (one logged the password it held).
        ({"RS_ISSUER_URL": "http://u:pw@127.0.0.1:8000"}, "RS_ISSUER_URL: must have no query"),
        ({"RS_ISSUER_URL": "http://127.0.0.1:8000?x=1"}, "RS_ISSUER_URL: must have no query"),
        ({"RS_ISSUER_URL": "HTTP://127.0.0.1:8000"}, "RS_ISSUER_URL: must be an http:// or"),
        ({"RS_ISSUER_URL": " http://127.0.0.1:8000"}, "RS_ISSUER_URL: must not hold spaces"),
        ({"RS_ISSUER_URL": "https://"}, "RS_ISSUER_URL: must be an http:// or https:// URL"),
        ({"RS_JWKS_STALE_IF_ERROR": "inf"}, "RS_JWKS_STALE_IF_ERROR: Input should be a finite"),
        ({"RS_MAX_TOKEN_BYTES": "100000"}, "RS_MAX_TOKEN_BYTES: Input should be less than or"),
        ({"RS_JWKS_URL": "http://idp.example/jwks"}, "RS_JWKS_URL: 'http://idp.example/jwks'"),
        # The audit: taken, and the verifier was never ready, retrying a fetch no request
        # could make ("InvalidURL: Invalid port: 'abc'") for ever.
        ({"RS_JWKS_URL": "http://127.0.0.1:abc/jwks"}, "RS_JWKS_URL: not a URL"),
        ({"RS_JWKS_URL": "https://idp.example:0/jwks"}, "RS_JWKS_URL: port 0"),
        ({"RS_JWKS_URL": "https:///jwks"}, "RS_JWKS_URL: must have a host"),
        ({"RS_JWKS_URL": "https://idp.example/jwks\n"}, "RS_JWKS_URL: must not hold spaces"),
        ({"RS_CORS_ORIGINS": "http://x.test"}, "RS_CORS_ORIGINS: not JSON"),
        # Taken and clamped: a maximum of 30 s trusted key sets for 60.
        ({"RS_JWKS_MAX_TTL": "30"}, "RS_JWKS_MAX_TTL: must not be below RS_JWKS_MIN_TTL (60 s)"),
        ({"RS_AUDIENCE": ""}, "RS_AUDIENCE: String should have at least 1 character"),
        # The audit: taken, and an issuer answering `max-age=0` got a 503 for every request.
        (
            {"RS_JWKS_MIN_TTL": "0", "RS_JWKS_STALE_IF_ERROR": "0"},
            "RS_JWKS_STALE_IF_ERROR: must not be 0 when RS_JWKS_MIN_TTL is 0",
        ),
    ],
)
def test_the_resource_server_refuses_a_bad_setting_at_start(monkeypatch, capsys, env, line):
    from resource_server.settings import Settings as RSSettings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as ended:
        load_settings(RSSettings)
    assert ended.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: invalid setting {line}")


@pytest.mark.parametrize("module", ["issuer.app", "resource_server.app"])
def test_a_bad_variable_ends_the_server_with_one_line_naming_it(tmp_path, module):
    # The audit: uvicorn printed a 40-line traceback ending in the field's name.
    prefix = "ISSUER" if module == "issuer.app" else "RS"
    env = {**os.environ, f"{prefix}_LOG_FORMAT": "xml", "PYTHONWARNINGS": "ignore"}
    ended = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ended.returncode == 2
    assert ended.stderr == (
        f"error: invalid setting {prefix}_LOG_FORMAT: Input should be 'json' or 'text'\n"
    )


@pytest.mark.parametrize("passphrase", [None, ""])
def test_the_database_key_backend_without_its_passphrase_is_a_setting_error(
    monkeypatch, capsys, passphrase
):
    # The audit: taken, and the issuer created the database's schema and then ended in a
    # traceback (exit 3), the scripts in "error:" (exit 1) after the same schema creation.
    monkeypatch.setenv("ISSUER_KEYS_BACKEND", "database")
    monkeypatch.delenv("ISSUER_KEYS_PASSPHRASE", raising=False)
    if passphrase is not None:
        monkeypatch.setenv("ISSUER_KEYS_PASSPHRASE", passphrase)
    with pytest.raises(SystemExit) as ended:
        load_settings(Settings)
    assert ended.value.code == 2
    assert capsys.readouterr().err == (
        "error: invalid setting ISSUER_KEYS_BACKEND: database needs ISSUER_KEYS_PASSPHRASE "
        "(the keys are stored encrypted with it)\n"
    )
    monkeypatch.setenv("ISSUER_KEYS_PASSPHRASE", "correct horse battery staple")
    assert load_settings(Settings).keys_backend == "database"


@pytest.mark.parametrize("audience", [" ", "api ", "my api", "api\t", "api\x00"])
def test_an_audience_is_one_word(audience):
    # The audit: ISSUER_AUDIENCE="api " (a space left in an env file) was taken. Its tokens
    # carried "aud": "api ", which RS_AUDIENCE=api refused, and no client could introspect
    # them: a client's --resource-server audience is one word.
    from resource_server.settings import Settings as RSSettings

    for settings in (Settings, RSSettings):
        with pytest.raises(ValidationError, match="audience") as refused:
            settings(audience=audience)
        assert "must be one word, without spaces or control characters" in str(refused.value)
    assert Settings(audience="https://api.example/v1").audience == "https://api.example/v1"
    assert RSSettings(audience="urn:api").audience == "urn:api"


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_keys_dir_is_refused(monkeypatch, value):
    # The audit: ISSUER_KEYS_DIR= was the current directory, keys and cleanup included.
    monkeypatch.setenv("ISSUER_KEYS_DIR", value)
    with pytest.raises(ValidationError, match="keys_dir"):
        Settings()
    with pytest.raises(ValidationError, match="must name a directory"):
        Settings(keys_dir=value)


def test_an_empty_optional_url_is_not_set(monkeypatch):
    # The review: `ISSUER_REDIS_URL=${REDIS_URL:-}` in a compose file stopped the issuer.
    from resource_server.settings import Settings as RSSettings

    monkeypatch.setenv("ISSUER_REDIS_URL", "")
    monkeypatch.setenv("RS_JWKS_URL", "")
    assert Settings().redis_url is None
    assert RSSettings().jwks_url is None


def test_a_plain_http_issuer_elsewhere_than_loopback_needs_its_setting():
    from resource_server.settings import Settings as RSSettings

    with pytest.raises(ValidationError, match="issuer_url"):
        RSSettings(issuer_url="http://idp.example")
    allowed = RSSettings(issuer_url="http://idp.example", allow_insecure_http=True)
    assert allowed.issuer_url == "http://idp.example"


def test_a_list_setting_that_is_not_json_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("ISSUER_CORS_ORIGINS", "http://127.0.0.1:5173")
    with pytest.raises(SystemExit) as ended:
        load_settings(Settings)
    assert ended.value.code == 2
    assert capsys.readouterr().err == (
        'error: invalid setting ISSUER_CORS_ORIGINS: not JSON (a list is written ["a", "b"])\n'
    )


@pytest.mark.parametrize(
    ("origin", "written"),
    [
        ("http://app.example/", "(http://app.example)"),
        ("HTTP://App.Example:80", "(http://app.example)"),
        ("https://app.example:443", "(https://app.example)"),
        ("app.example", ""),
        ("http://app.example/app", "(http://app.example)"),
        ("ftp://app.example", ""),
        # A browser sends an internationalized host in its ASCII (xn--) form, never spaces.
        ("https://bücher.example", ""),
        ("http://app .example", ""),
    ],
)
def test_a_cors_origin_must_be_written_as_browsers_send_it(origin, written):
    # The audit: these were taken, and the Origin header, compared exactly, never matched.
    from resource_server.settings import Settings as RSSettings

    for settings in (Settings, RSSettings):
        with pytest.raises(ValidationError, match="not an origin as browsers send it") as refused:
            settings(cors_origins=[origin])
        assert written in str(refused.value)


def test_origins_as_browsers_send_them_are_accepted():
    from resource_server.settings import Settings as RSSettings

    origins = ["*", "http://127.0.0.1:8001", "https://app.example", "http://[::1]:5173"]
    assert Settings(cors_origins=origins).cors_origins == origins
    assert RSSettings(cors_origins=origins).cors_origins == origins
