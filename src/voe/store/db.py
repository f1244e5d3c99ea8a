"""Where the store lives and how it is opened.

Embedded default: a SQLite file in the data directory. Scale-out: PostgreSQL
named by ``VOE_DATABASE_URL``. Either way the schema is brought to the newest
Alembic revision on open, so an upgrade is "install the new version, start it".
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from platformdirs import user_data_dir
from sqlalchemy import Engine, create_engine, event

MIGRATIONS = Path(__file__).with_name("migrations")


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """``--data-dir``, else ``VOE_DATA_DIR``, else the user's data dir."""
    path = Path(explicit or os.environ.get("VOE_DATA_DIR") or user_data_dir("voe"))
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def database_url(directory: Path, explicit: str | None = None) -> str:
    url = explicit or os.environ.get("VOE_DATABASE_URL")
    if url:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url
    return f"sqlite:///{directory / 'voe.sqlite'}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # pysqlite only opens a transaction before a write, so the reads of a
    # read-then-write (the double-start guard, say) would each see their own
    # snapshot. Take transaction control from it; ``_sqlite_begin`` issues
    # BEGIN at the start of every SQLAlchemy transaction instead.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL lets the event stream read while the reconciler writes; foreign keys
    # are off by default in SQLite and the claims table relies on them.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _sqlite_begin(conn) -> None:
    # IMMEDIATE: a transaction that reads and then writes must not find, at
    # its first write, that another writer committed since its read (WAL
    # answers that with an immediate "database is locked"); taking the write
    # lock up front makes writers queue on busy_timeout instead. A reader
    # (see ``reader``) needs no lock: WAL gives it a snapshot, and taking the
    # write lock for it would queue every status read behind every write.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


READ_ONLY = "voe_read_only"


def reader(engine: Engine) -> Engine:
    """The same engine for transactions that only read: on SQLite they take
    a snapshot instead of the write lock (PostgreSQL ignores the option)."""
    return engine.execution_options(**{READ_ONLY: True})


def open_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    return engine


def migrate(engine: Engine) -> None:
    """Upgrade the schema to the newest revision (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
