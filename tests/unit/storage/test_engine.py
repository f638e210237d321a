"""The engine: SQLite files are private to their owner, like the keys; a service's waits on
PostgreSQL are bounded."""

import logging
import os
import re
import socket
import sqlite3
import stat
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from issuer.app import create_app
from issuer.settings import Settings
from issuer.storage.engine import DatabaseFileError, make_engine
from tests.support import fresh_key_set, running


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "issuer.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:  # WAL mode: -wal and -shm appear beside it
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
        for companion in tmp_path.glob("issuer.db-*"):
            assert stat.S_IMODE(companion.stat().st_mode) & 0o077 == 0, companion
    engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_existing_database_keeps_its_mode_and_a_readable_one_is_named(tmp_path, caplog):
    path = tmp_path / "issuer.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    with caplog.at_level(logging.WARNING, logger="issuer.storage.engine"):
        make_engine(f"sqlite:///{path}").dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert f"chmod 600 {path}" in caplog.text and "mode 640" in caplog.text
    caplog.clear()
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="issuer.storage.engine"):
        make_engine(f"sqlite:///{path}").dispose()
    assert caplog.text == ""


def unwritable(tmp_path):
    """A directory this process cannot create files in; a skip where it can anyway (root)."""
    directory = tmp_path / "read-only"
    directory.mkdir(mode=0o555)
    directory.chmod(0o555)
    if os.access(directory, os.W_OK):
        pytest.skip("this process may write a directory of mode 555 (root)")
    return directory


@pytest.mark.parametrize(
    ("where", "cause"),
    [
        ("a-file/issuer.db", "Not a directory"),  # fails alike for root
        ("missing/issuer.db", "No such file or directory"),
        ("read-only/issuer.db", "Permission denied"),
    ],
)
def test_a_database_file_that_cannot_be_created_is_an_error_naming_it_and_why(
    tmp_path, where, cause
):
    # The audit: a directory without write permission gave a PermissionError traceback.
    (tmp_path / "a-file").touch()
    if where.startswith("read-only"):
        unwritable(tmp_path)
    path = tmp_path / where
    with pytest.raises(DatabaseFileError, match=f"^cannot create the database {path}: {cause}$"):
        make_engine(f"sqlite:///{path}")


async def test_the_issuer_refuses_to_start_on_a_database_it_cannot_create(tmp_path):
    (tmp_path / "a-file").touch()
    fresh_key_set(tmp_path / "keys")
    path = tmp_path / "a-file" / "issuer.db"
    app = create_app(Settings(keys_dir=tmp_path / "keys", database_url=f"sqlite:///{path}"))
    with pytest.raises(DatabaseFileError, match=f"{path}: Not a directory"):
        async with running(app):
            pass


def test_a_database_path_linking_to_a_file_not_there_yet_is_created_private(tmp_path):
    # The review: a symbolic link to a database not created yet (O_CREAT | O_EXCL found the
    # link) ended every script, and the issuer's start, in a FileNotFoundError traceback.
    (tmp_path / "data").mkdir()
    link = tmp_path / "issuer.db"
    link.symlink_to(tmp_path / "data" / "issuer.db")
    engine = make_engine(f"sqlite:///{link}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
    engine.dispose()
    assert stat.S_IMODE((tmp_path / "data" / "issuer.db").stat().st_mode) == 0o600
    nowhere = tmp_path / "nowhere.db"
    nowhere.symlink_to(tmp_path / "missing" / "issuer.db")
    target = re.escape(os.path.realpath(tmp_path / "missing" / "issuer.db"))
    with pytest.raises(DatabaseFileError, match=f"^cannot create the database {target}: No such"):
        make_engine(f"sqlite:///{nowhere}")
    loop = tmp_path / "loop.db"
    loop.symlink_to(loop)
    with pytest.raises(DatabaseFileError, match=f"^cannot use the database {re.escape(str(loop))}"):
        make_engine(f"sqlite:///{loop}")


def test_a_database_path_naming_a_directory_says_so(tmp_path):
    # The scripts audit: SQLite's "unable to open database file", after a warning that the
    # directory's mode let others read "the database".
    with pytest.raises(DatabaseFileError, match=f"^cannot use the database {tmp_path}: it is a"):
        make_engine(f"sqlite:///{tmp_path}")


def test_a_connection_waits_while_another_writes_a_database_not_yet_in_wal_mode(tmp_path):
    # CI: processes preparing a fresh database at once; one failed with "database is locked"
    # at once, its busy timeout unused: SQLite answers so to a connection turning the database
    # to WAL while another holds its write lock.
    path = tmp_path / "issuer.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    threading.Timer(0.3, writer.execute, ["COMMIT"]).start()
    engine = make_engine(f"sqlite:///{path}")
    started = time.monotonic()
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("SELECT x FROM t").scalars().all() == [1]
    assert time.monotonic() - started >= 0.2  # it waited for the commit
    engine.dispose()
    writer.close()


def test_a_postgres_server_that_never_answers_is_an_error_within_the_timeout(postgres_url):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # the handshake completes in the kernel; nothing ever answers
    port = silent.getsockname()[1]
    engine = make_engine(postgres_url.replace(":5432/", f":{port}/"), timeout=1)
    started = time.monotonic()
    with pytest.raises(OperationalError), engine.connect():
        pass
    assert time.monotonic() - started < 10  # libpq's connect_timeout: 2 s at least
    silent.close()


async def test_the_issuer_start_on_a_server_that_never_answers_fails_within_the_timeout(
    tmp_path, postgres_url
):
    # The schema is prepared with no bound on statements (it waits for another process
    # creating it), but connecting stays bounded: a silent server must not hang the start.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    url = postgres_url.replace(":5432/", f":{silent.getsockname()[1]}/")
    fresh_key_set(tmp_path / "keys")
    app = create_app(Settings(keys_dir=tmp_path / "keys", database_url=url, database_timeout=1))
    started = time.monotonic()
    with pytest.raises(OperationalError):
        async with running(app):
            pass
    assert time.monotonic() - started < 10
    silent.close()


def test_an_engine_without_statement_bounds_lets_statements_and_lock_waits_run(postgres_url):
    engine = make_engine(postgres_url, timeout=0.5, bound_statements=False)
    with engine.connect() as connection:
        assert connection.execute(text("SHOW statement_timeout")).scalar() == "0"
        assert connection.execute(text("SHOW lock_timeout")).scalar() == "0"
    # Connecting is still bounded: see the silent server above.
    engine.dispose()


def test_a_lock_held_elsewhere_is_an_error_within_the_timeout_and_the_url_options_stay(
    postgres_url,
):
    engine = make_engine(postgres_url, timeout=0.5)
    holder = make_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (id integer)"))
    with holder.connect() as holding:
        holding.execute(text("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()
        with pytest.raises(OperationalError, match="timeout"), engine.connect() as waiting:
            waiting.execute(text("SELECT * FROM t"))
        assert time.monotonic() - started < 5
        holding.rollback()
    with engine.connect() as connection:  # the test's own schema: the URL's search_path kept
        assert connection.execute(text("SHOW search_path")).scalar() == postgres_url.split("%3D")[1]
        assert connection.execute(text("SHOW statement_timeout")).scalar() == "500ms"
    engine.dispose()
    holder.dispose()
