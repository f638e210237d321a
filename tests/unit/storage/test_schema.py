"""Migrations on SQLite and PostgreSQL, and the start-up schema check."""

import multiprocessing
import threading
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from issuer.accounts.users import UserError
from issuer.admin import create_client, create_user
from issuer.app import create_app
from issuer.models import Base
from issuer.oauth.clients import ClientError
from issuer.settings import Settings
from issuer.storage import schema
from issuer.storage.engine import make_engine
from tests.support import fresh_key_set, running, users_differing_only_in_case
from tests.unit.storage.racer import race

TABLES = {
    "users",
    "clients",
    "refresh_tokens",
    "refresh_token_families",
    "authorization_codes",
    "browser_sessions",
    "consents",
    "revoked_access_tokens",
    "signing_keys",
    "key_set_meta",
    "alembic_version",
}


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_migrations_build_the_schema_from_empty(engine):
    schema.upgrade(engine)
    assert schema.current(engine) == schema.head()
    assert set(inspect(engine).get_table_names()) >= TABLES


def test_the_migrations_build_exactly_the_tables_the_models_describe(engine):
    schema.upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


@pytest.mark.parametrize(
    "start", ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009"]
)
def test_migrations_run_from_every_earlier_revision_keeping_data(engine, start):
    schema.upgrade(engine, start)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (username, password_hash, scopes, disabled, created_at) "
                "VALUES ('kept', 'x', 'read', false, CURRENT_TIMESTAMP)"
            )
        )
    schema.upgrade(engine)
    assert schema.current(engine) == schema.head()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT username FROM users")).scalar() == "kept"


def test_every_revision_is_covered_by_the_tests():
    from alembic.script import ScriptDirectory

    revisions = {s.revision for s in ScriptDirectory.from_config(schema._config()).walk_revisions()}
    # A new migration must be added to the parametrization above (its predecessor as start).
    assert revisions == {
        "0001",
        "0002",
        "0003",
        "0004",
        "0005",
        "0006",
        "0007",
        "0008",
        "0009",
        "0010",
    }


def test_times_past_january_2038_are_stored_and_earlier_rows_kept(engine):
    schema.upgrade(engine, "0004")
    row = "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES (:jti, :at)"
    with engine.begin() as connection:
        connection.execute(text(row), {"jti": "before", "at": 2**31 - 1})
    schema.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text(row), {"jti": "after", "at": 2**31 + 86400})
        stored = dict(
            connection.execute(text("SELECT jti, expires_at FROM revoked_access_tokens")).all()
        )
    assert stored == {"before": 2**31 - 1, "after": 2**31 + 86400}


def test_prepare_creates_an_empty_database(engine):
    schema.prepare(engine)
    assert schema.current(engine) == schema.head()


def test_issuer_refuses_an_older_schema_and_names_the_command(tmp_path: Path, database_url):
    engine = make_engine(database_url)
    schema.upgrade(engine, "0001")
    engine.dispose()
    fresh_key_set(tmp_path / "keys")
    settings = Settings(keys_dir=tmp_path / "keys", database_url=database_url)
    with pytest.raises(schema.SchemaMismatch, match="make migrate"):
        create_user(settings, "alice", "wonderland1")


async def test_issuer_refuses_to_start_on_an_older_schema(tmp_path: Path, database_url):
    engine = make_engine(database_url)
    schema.upgrade(engine, "0001")
    engine.dispose()
    fresh_key_set(tmp_path / "keys")
    app = create_app(Settings(keys_dir=tmp_path / "keys", database_url=database_url))
    with pytest.raises(schema.SchemaMismatch, match="0001"):
        async with running(app):
            pass


def _hold_schema_lock(url: str, seconds: float, held: threading.Event) -> None:
    """What a process creating the schema does to everyone else: hold its lock a while."""
    engine = make_engine(url)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": schema.SCHEMA_LOCK})
        held.set()
        time.sleep(seconds)
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": schema.SCHEMA_LOCK})
    engine.dispose()


async def test_an_issuer_starting_while_another_creates_the_schema_waits_for_it(
    tmp_path: Path, postgres_url
):
    # The audit: an issuer started beside a migration holding the schema lock longer than
    # ISSUER_DATABASE_TIMEOUT failed with QueryCanceled (statement timeout) instead of waiting.
    fresh_key_set(tmp_path / "keys")
    settings = Settings(keys_dir=tmp_path / "keys", database_url=postgres_url, database_timeout=0.5)
    held = threading.Event()
    holder = threading.Thread(target=_hold_schema_lock, args=(postgres_url, 1.5, held))
    holder.start()
    try:
        assert held.wait(10)
        async with running(create_app(settings)) as client:
            assert (await client.get("/readyz")).status_code == 200
    finally:
        holder.join()


def test_a_schema_newer_than_the_issuer_is_refused(engine):
    schema.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(schema.SchemaMismatch, match="newer"):
        schema.prepare(engine)


def test_migrating_a_schema_newer_than_the_issuer_is_refused_and_changes_nothing(engine):
    schema.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(schema.SchemaMismatch, match=r"0099, newer than this issuer .* upgrade the"):
        schema.upgrade(engine)
    assert schema.current(engine) == "0099"


@pytest.mark.parametrize("target", ["0003", "base"])
def test_migrating_to_an_older_revision_is_refused_and_changes_nothing(engine, target):
    schema.upgrade(engine)
    with pytest.raises(schema.DowngradeRefused) as refused:
        schema.upgrade(engine, target)
    assert (refused.value.current, refused.value.target) == (schema.head(), target)
    assert schema.current(engine) == schema.head()
    assert schema.upgrade(engine, schema.head()) == schema.head()  # the current one: no-op


def test_a_failing_migration_leaves_nothing_behind(engine, monkeypatch):
    from alembic.operations import Operations

    schema.upgrade(engine, "0001")
    real = Operations.bulk_insert

    def failing(self, *args, **kwargs):
        raise RuntimeError("injected failure in the middle of 0002")

    monkeypatch.setattr(Operations, "bulk_insert", failing)
    with pytest.raises(RuntimeError, match="injected"):
        schema.upgrade(engine)
    monkeypatch.setattr(Operations, "bulk_insert", real)
    assert schema.current(engine) == "0001"
    assert "signing_keys" not in inspect(engine).get_table_names()


def test_duplicate_username_is_a_clean_error(tmp_path, database_url):
    settings = Settings(keys_dir=tmp_path / "keys", database_url=database_url)
    create_user(settings, "alice", "wonderland1")
    with pytest.raises(UserError, match="already exists"):
        create_user(settings, "alice", "another-one")


def test_values_longer_than_their_columns_are_refused_alike_on_both_databases(
    tmp_path, database_url
):
    # The audit: PostgreSQL refused them with a raw error quoting the password hash, SQLite
    # stored them.
    settings = Settings(keys_dir=tmp_path / "keys", database_url=database_url)
    with pytest.raises(UserError, match="too long for a user: scopes"):
        create_user(settings, "bob", "builder-12", scope="s" * 2001)
    with pytest.raises(ClientError, match="too long for a client: name"):
        create_client(settings, "reports", ("client_credentials",), name="n" * 201)
    create_user(settings, "bob", "builder-12", scope="s" * 2000)  # the longest is fine


def test_0003_gives_every_refresh_token_family_its_row_and_folds_usernames(engine):
    schema.upgrade(engine, "0002")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (username, password_hash, scopes, disabled, created_at) "
                "VALUES ('Alice', 'x', '', false, CURRENT_TIMESTAMP)"
            )
        )
        for token, family, revoked in (("t1", "f1", None), ("t2", "f1", None), ("t3", "f2", 7)):
            connection.execute(
                text(
                    "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, scope,"
                    " access_jti, access_expires_at, created_at, idle_expires_at,"
                    " family_expires_at, revoked_at)"
                    " VALUES (:t, :f, 'spa', 1, '', 'j', 0, 1, 2, 3, :r)"
                ),
                {"t": token, "f": family, "r": revoked},
            )
    schema.upgrade(engine)
    with engine.connect() as connection:
        families = connection.execute(
            text("SELECT family_id, revoked_at FROM refresh_token_families ORDER BY family_id")
        ).all()
        assert [tuple(row) for row in families] == [("f1", None), ("f2", 7)]
        assert connection.execute(text("SELECT username FROM users")).scalar() == "alice"


def test_0003_refuses_usernames_that_differ_only_in_case_and_changes_nothing(engine):
    users_differing_only_in_case(engine)
    with pytest.raises(RuntimeError, match="bob"):
        schema.upgrade(engine)
    assert schema.current(engine) == "0002"
    assert "refresh_token_families" not in inspect(engine).get_table_names()


def test_0006_keeps_users_and_gives_no_new_one_the_id_of_a_deleted_one(engine):
    # The audit: SQLite gave a deleted user's id (the highest) to the next user, who then
    # inherited its tokens. A user deleted before the migration must not lend its id either.
    schema.upgrade(engine, "0005")
    add_user = text(
        "INSERT INTO users (username, password_hash, scopes, disabled, created_at) "
        "VALUES (:n, 'x', '', false, CURRENT_TIMESTAMP)"
    )
    with engine.begin() as connection:
        for name in ("ann", "bea", "cid", "dot"):
            connection.execute(add_user, {"n": name})
        connection.execute(
            text("INSERT INTO browser_sessions VALUES ('h', 4, 1, 1, 1)")  # dot's session
        )
        connection.execute(text("DELETE FROM users WHERE username IN ('cid', 'dot')"))
    schema.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(add_user, {"n": "eve"})
        users = connection.execute(text("SELECT username, id FROM users ORDER BY id")).all()
    assert [tuple(row) for row in users] == [("ann", 1), ("bea", 2), ("eve", 5)]


def test_0007_gives_each_family_the_end_of_its_newest_token_and_access_token(engine):
    schema.upgrade(engine, "0006")
    add_token = text(
        "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, scope, "
        "access_jti, access_expires_at, created_at, idle_expires_at, family_expires_at) "
        "VALUES (:h, :f, 'spa', 1, '', :h, :access, 0, :idle, 9000)"
    )
    with engine.begin() as connection:
        for family in ("idle-last", "access-last", "no-tokens"):
            connection.execute(
                text(
                    "INSERT INTO refresh_token_families (family_id, client_id, user_id, "
                    "created_at) VALUES (:f, 'spa', 1, 7)"
                ),
                {"f": family},
            )
        for digest, family, access, idle in [
            ("a", "idle-last", 100, 500),
            ("b", "idle-last", 200, 800),  # the newest: its idle end is the family's
            ("c", "access-last", 950, 300),  # an access token outliving every idle end
        ]:
            connection.execute(
                add_token, {"h": digest, "f": family, "access": access, "idle": idle}
            )
    schema.upgrade(engine)
    with engine.connect() as connection:
        ends = dict(
            connection.execute(text("SELECT family_id, ends_at FROM refresh_token_families")).all()
        )
    assert ends == {"idle-last": 800, "access-last": 950, "no-tokens": 7}


@pytest.mark.parametrize("step", ["prepare", "upgrade"])
def test_processes_preparing_an_empty_database_at_once_all_succeed(database_url, step):
    # The audit: four create_user.py on a fresh PostgreSQL database, three failed on a unique
    # violation creating alembic_version; two issuers started at once, one died; on SQLite one
    # read "(none)" beside tables another had just made, and refused.
    processes = 4
    # Spawned (fork warns in a process with threads), importing little (racer.py).
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    racers = [
        context.Process(target=race, args=(database_url, step, barrier, results))
        for _ in range(processes)
    ]
    for racer in racers:
        racer.start()
    outcomes = [results.get(timeout=60) for _ in racers]
    for racer in racers:
        racer.join(timeout=10)
    assert outcomes == ["ok"] * processes
    engine = make_engine(database_url)
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    engine.dispose()
    assert [tuple(row) for row in versions] == [(schema.head(),)]
