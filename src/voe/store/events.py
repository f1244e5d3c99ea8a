"""The event log: every decision, transition, driver call and inventory change,
persisted before (or as) it happens, queryable, and streamed live.

Readers follow the log by id, so a stream resumes exactly where it stopped
(``Last-Event-ID``) and several controllers on one PostgreSQL see one log.
An event appended while the API serves a request records that request's id
and the name of its token in its data (``voe.cause``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from voe.cause import CAUSE
from voe.domain.severity import SEVERITIES, Severity
from voe.store import schema
from voe.store.db import reader
from voe.store.group_commit import GroupCommit
from voe.store.time import aware


@dataclass(frozen=True)
class EventQuery:
    persona: str | None = None
    host: str | None = None
    group: str | None = None
    min_severity: Severity | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_id: int = 0
    limit: int = 100
    newest_first: bool = False


_INSERT = insert(schema.events)
"""Built once: every transition and driver call is an event, and building
the statement per event cost more than SQLite's insert."""


class EventLog:
    def __init__(self, engine: Engine, commits: GroupCommit):
        self.engine = engine
        self.reader = reader(engine)
        self.commits = commits

    def append(self, severity: Severity, kind: str, message: str, *, persona: str | None = None,
               host: str | None = None, group: str | None = None, data: dict[str, Any] | None = None,
               conn=None) -> int:
        cause = CAUSE.get()
        if cause is not None:
            data = {**(data or {}), **cause.as_data()}
        values = dict(at=datetime.now(UTC), severity=severity, kind=kind, message=message, persona=persona,
                      host=host, group=group, data=data)
        if conn is not None:
            return conn.execute(_INSERT, values).inserted_primary_key[0]
        return self.commits.run(lambda c: c.execute(_INSERT, values).inserted_primary_key[0])

    def query(self, q: EventQuery) -> list[dict]:
        t = schema.events
        stmt = select(t).where(t.c.id > q.after_id)
        if q.persona:
            stmt = stmt.where(t.c.persona == q.persona)
        if q.host:
            stmt = stmt.where(t.c.host == q.host)
        if q.group:
            stmt = stmt.where(t.c.group == q.group)
        if q.kind:
            stmt = stmt.where(t.c.kind == q.kind)
        if q.min_severity:
            stmt = stmt.where(t.c.severity.in_(SEVERITIES[SEVERITIES.index(q.min_severity):]))
        if q.since:
            stmt = stmt.where(t.c.at >= q.since)
        if q.until:
            stmt = stmt.where(t.c.at <= q.until)
        stmt = stmt.order_by(t.c.id.desc() if q.newest_first else t.c.id).limit(q.limit)
        with self.reader.connect() as c:
            return [_row(r) for r in c.execute(stmt)]

    def id_beyond_newest(self, keep: int) -> int:
        """The id of the newest event that is not among the newest ``keep``
        (0 when there are no more than ``keep``)."""
        t = schema.events
        with self.reader.connect() as c:
            return c.execute(select(t.c.id).order_by(t.c.id.desc()).offset(keep).limit(1)).scalar() or 0

    def prune_batch(self, after_id: int, batch: int,
                    verdict: Callable[[int, str, datetime], bool | None]) -> tuple[int, int | None]:
        """Reads up to ``batch`` events after ``after_id``, oldest first, and
        deletes those whose ``verdict(id, kind, at)`` is True; a verdict of
        None means no event from this one on is due, and ends the scan.
        Returns how many were deleted and the id to continue after (None
        when the scan is over). One short transaction per batch, so event
        writers wait for a batch at most, never for a whole pruning."""
        t = schema.events
        with self.reader.connect() as c:
            rows = c.execute(select(t.c.id, t.c.kind, t.c.at).where(t.c.id > after_id)
                             .order_by(t.c.id).limit(batch)).all()
        doomed: list[int] = []
        for event_id, kind, at in rows:
            due = verdict(event_id, kind, aware(at))
            if due is None:
                break
            if due:
                doomed.append(event_id)
        else:
            if len(rows) == batch:
                self._delete(doomed)
                return len(doomed), rows[-1][0]
        self._delete(doomed)
        return len(doomed), None

    def _delete(self, ids: list[int]) -> None:
        if ids:
            with self.engine.begin() as c:
                c.execute(delete(schema.events).where(schema.events.c.id.in_(ids)))


def _row(r) -> dict:
    d = dict(r._mapping)
    at = d["at"]
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)  # SQLite keeps no zone; every stamp voe writes is UTC
    d["at"] = at.isoformat() if at else None
    return d
