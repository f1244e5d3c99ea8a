"""Where the store lives and how it is opened.

Embedded default: a SQLite file in the data directory. Scale-out: PostgreSQL
named by ``VOE_DATABASE_URL``. Either way the schema is brought to the newest
Alembic revision on open, so an upgrade is "install the new version, start it".
"""

from __future__ import annotations

import os
import threading
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
    # snapshot. Take transaction control from it; ``_sqlite_transactions`` issues
    # BEGIN at the start of every SQLAlchemy transaction instead.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL lets the event stream read while the reconciler writes; foreign keys
    # are off by default in SQLite and the claims table relies on them.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
    cur.close()


class _Writers:
    """One SQLite writer at a time, queued in this process rather than by
    SQLite. A writer that finds the database locked sleeps in SQLite's busy
    handler (1, 2, 5 ... up to 100 ms at a time) and is not woken when the
    lock frees; with the reconciler's steps, the API's threads and the
    agents' beats all writing, writes would spend most of their time asleep
    there. A lock hands over at once. It is held from BEGIN to
    COMMIT or ROLLBACK; a writer that cannot get it within
    ``BUSY_TIMEOUT`` (another transaction of its own thread left open,
    say) goes on without it and SQLite's own locking decides, as before."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holder: object | None = None

    def begin(self, dbapi_conn) -> None:
        if self.lock.acquire(timeout=BUSY_TIMEOUT):
            self.holder = dbapi_conn

    def end(self, dbapi_conn) -> None:
        if self.holder is not None and self.holder is dbapi_conn:
            self.holder = None
            self.lock.release()


BUSY_TIMEOUT = 10.0  # seconds


def _sqlite_transactions(engine: Engine) -> None:
    """BEGIN for readers, BEGIN IMMEDIATE behind ``_Writers`` for writers.
    IMMEDIATE: a transaction that reads and then writes must not find, at
    its first write, that another writer committed since its read (WAL
    answers that with an immediate "database is locked"); taking the write
    lock up front makes writers queue instead. A reader (see ``reader``)
    needs no lock: WAL gives it a snapshot, and taking the write lock for
    it would queue every status read behind every write."""
    writers = _Writers()
    dialect = engine.dialect
    dialect.voe_writers = writers  # for the tests: is it free?

    def begin(conn) -> None:
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
            return
        dbapi_conn = conn.connection.dbapi_connection
        writers.begin(dbapi_conn)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            writers.end(dbapi_conn)
            raise

    def ending(name: str):
        done = getattr(dialect, name)

        def end(conn) -> None:
            try:
                done(conn)
            finally:
                writers.end(getattr(conn, "dbapi_connection", conn))
        return end

    event.listen(engine, "begin", begin)
    dialect.do_commit = ending("do_commit")
    dialect.do_rollback = ending("do_rollback")


READ_ONLY = "voe_read_only"


def reader(engine: Engine) -> Engine:
    """The same engine for transactions that only read: on SQLite they take
    a snapshot instead of the write lock (PostgreSQL ignores the option)."""
    return engine.execution_options(**{READ_ONLY: True})


def open_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # a connection per thread that may hold one at once (the reconciler's
        # steps, the API's workers): with the default five, a group start's
        # writes queued for a connection before they queued for the lock
        engine = create_engine(url, connect_args={"check_same_thread": False}, pool_size=16, max_overflow=112)
        event.listen(engine, "connect", _sqlite_pragmas)
        _sqlite_transactions(engine)
    else:
        # a server gone without a word (its host down, a partition) is given
        # up on within seconds, not after the kernel's TCP retries: a
        # leader must notice before its lease runs out
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                               connect_args={"connect_timeout": 2, "tcp_user_timeout": 2000, "keepalives": 1,
                                             "keepalives_idle": 2, "keepalives_interval": 1, "keepalives_count": 2})
    return engine


def migrate(engine: Engine) -> None:
    """Upgrade the schema to the newest revision (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
