"""A whole store as one file, and back: ``voe backup`` and ``voe restore``.

The file is gzip-compressed JSON lines: a header naming the format and the
schema revision, one line per row, table after table in the order their
foreign keys need, and an end line with the count of each table, so a
truncated file is refused rather than restored in part. Rows are read in
one snapshot (SQLite's WAL read transaction, PostgreSQL's REPEATABLE READ),
so a backup taken while the controller runs is consistent. Secrets stay
sealed: restoring needs the key they were sealed with, and is refused,
before anything is written, when the target's key cannot open them.

A restore brings the target to the backup's schema revision, writes every
row in one transaction, then upgrades to this voe's newest revision: a
backup from an older voe is restored and migrated; one from a newer voe is
refused. SQLite to PostgreSQL (or back) is a restore like any other."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import DateTime, Engine, Table, delete, func, insert, select, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from voe.errors import VoeError
from voe.store import db, schema
from voe.store.secrets import SEALED, Sealer

FORMAT = "voe-backup"
VERSION = 1
COORDINATION = {schema.leadership.name, schema.controllers.name, schema.beat_relay.name}
"""Which controllers serve, which leads, the beats they relay: facts of the
running controllers, not of the datacenter; a restored store starts with
none (its lease free), whatever the backup's controllers were doing."""
TABLES: list[Table] = [t for t in schema.metadata.sorted_tables  # parents before the rows that name them
                       if t.name not in COORDINATION]
_BATCH = 1000


class BackupRefused(VoeError):
    """A backup file that cannot be restored here; says why and what to do."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def backup_lines(engine: Engine) -> Iterator[dict]:
    """The store as the file's lines (header, rows, end), from one snapshot."""
    with _snapshot(engine) as conn:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        yield {"format": FORMAT, "version": VERSION, "schema": revision, "store": engine.dialect.name,
               "taken_at": datetime.now(UTC).isoformat()}
        counts: dict[str, int] = {}
        for table in TABLES:
            counts[table.name] = 0
            rows = conn.execution_options(stream_results=True, yield_per=_BATCH).execute(
                select(table).order_by(*table.primary_key.columns))
            for row in rows:
                counts[table.name] += 1
                yield {"table": table.name, "row": {k: _encode(v) for k, v in row._mapping.items()}}
        yield {"end": True, "counts": counts}


def backup_chunks(engine: Engine) -> Iterator[bytes]:
    """The backup file's bytes, gzip-compressed as they are read."""
    gz = zlib.compressobj(wbits=31)  # 31: a gzip header and trailer
    for line in backup_lines(engine):
        chunk = gz.compress(json.dumps(line, separators=(",", ":")).encode() + b"\n")
        if chunk:
            yield chunk
    yield gz.flush()


def read_file(path) -> Iterator[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        try:
            for line in f:
                yield json.loads(line)
        except (OSError, EOFError, json.JSONDecodeError) as e:
            raise BackupRefused(f"{path} is not a complete voe backup ({e}); take the backup again") from None


def restore(engine: Engine, open_lines: Callable[[], Iterator[dict]], sealer: Sealer,
            replace: bool = False) -> dict[str, int]:
    """Replace the store behind ``engine`` with a backup's rows; returns the
    count restored per table. ``open_lines`` reads the file from its start:
    a first reading checks it whole, a second writes it, so a backup of any
    size needs no more memory than a batch. Refused, with nothing written,
    when the store holds anything and ``replace`` is False, when the
    backup's schema is newer than this voe's, when the file is truncated, or
    when ``sealer`` cannot open its secrets."""
    revision, counts = _check(open_lines(), sealer)
    if not replace and _holds_anything(engine):
        raise BackupRefused("the target store is not empty: restore into a new data dir or database, "
                            "or pass --replace to overwrite it (stop every controller on it first)")
    by_name = {t.name: t for t in TABLES}
    with engine.begin() as conn:  # one transaction: a restore that fails leaves the store as it was
        _recreate_at(conn, revision)
        for table in reversed(TABLES):  # rows a migration seeded (the inventory version) give way
            conn.execute(delete(table))
        batch: list[dict] = []
        current: Table | None = None
        for line in open_lines():
            if "table" not in line:
                continue
            table = by_name[line["table"]]
            if table is not current or len(batch) >= _BATCH:
                _insert(conn, current, batch)
                batch, current = [], table
            batch.append(_decode(table, line["row"]))
        _insert(conn, current, batch)
        if engine.dialect.name == "postgresql":
            _advance_sequences(conn)
        _upgrade(conn, "head")
    return counts


def _check(lines: Iterator[dict], sealer: Sealer) -> tuple[str, dict[str, int]]:
    """The backup's schema revision and row counts, once the whole file has
    been read and found complete, known and openable with ``sealer``."""
    header = next(lines, None)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BackupRefused("not a voe backup (no voe-backup header): give a file written by `voe backup`")
    if header.get("version") != VERSION:
        raise BackupRefused(f"backup format version {header.get('version')} is not {VERSION}: "
                            "restore it with the voe that wrote it")
    revision = header.get("schema")
    _check_known(revision)
    counts = {t.name: 0 for t in TABLES}
    end = None
    for line in lines:
        if line.get("end"):
            end = line
            break
        name = line.get("table")
        if name not in counts:
            raise BackupRefused(f"the backup names a table {name!r} that this voe does not have")
        counts[name] += 1
        if name == schema.objects.name and _has_sealed(line["row"].get("spec")):
            sealer.unseal(line["row"]["kind"], line["row"]["spec"])  # SecretKeyMismatch names the key to set
    if end is None or counts != {k: end["counts"].get(k, 0) for k in counts}:
        raise BackupRefused("the backup ends before its end line, or its row counts do not match: "
                            "the file is truncated; take the backup again")
    return revision, counts


def _insert(conn, table: Table | None, rows: list[dict]) -> None:
    if table is not None and rows:
        conn.execute(insert(table), rows)


@contextmanager
def _snapshot(engine: Engine):
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True) as conn, \
                conn.begin():
            yield conn
    else:
        with db.reader(engine).connect() as conn, conn.begin():
            yield conn


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS))
    return cfg


def _check_known(revision: Any) -> None:
    scripts = ScriptDirectory.from_config(_config())
    try:
        known = isinstance(revision, str) and scripts.get_revision(revision) is not None
    except CommandError:
        known = False
    if not known:
        raise BackupRefused(f"the backup's schema {revision!r} is unknown to this voe (newest "
                            f"{scripts.get_current_head()}): it was taken by a newer voe; restore it with that "
                            "version or newer")


def _has_sealed(value: Any) -> bool:
    if isinstance(value, dict):
        return SEALED in value or any(_has_sealed(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_sealed(v) for v in value)
    return False


def _holds_anything(engine: Engine) -> bool:
    with engine.connect() as conn:
        for table in TABLES:
            if table.name == schema.inventory_version.name:
                continue  # a fresh store's version row
            try:
                if conn.execute(select(func.count()).select_from(table)).scalar():
                    return True
            except (OperationalError, ProgrammingError):  # a store never opened has no tables yet
                conn.rollback()
                return False
    return False


def _recreate_at(conn, revision: str) -> None:
    schema.metadata.drop_all(conn)
    conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    _upgrade(conn, revision)


def _upgrade(conn, revision: str) -> None:
    cfg = _config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


def _advance_sequences(conn) -> None:
    """Identity columns written with their ids: the next id follows the largest."""
    for table in TABLES:
        column = table.autoincrement_column
        if column is not None:
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                              f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"))


def _encode(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _decode(table: Table, row: dict) -> dict:
    out = {}
    for name, value in row.items():
        column = table.c.get(name)
        if column is not None and isinstance(column.type, DateTime) and isinstance(value, str):
            value = datetime.fromisoformat(value)
        out[name] = value
    return out
