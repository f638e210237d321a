"""The engine: SQLite files are private to their owner, like the keys."""

import logging
import stat

from sqlalchemy import text

from issuer.storage.engine import make_engine


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
