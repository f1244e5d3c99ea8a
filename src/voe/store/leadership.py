"""Leadership among controllers that share one PostgreSQL: a lease in the
database, held by one controller at a time and renewed by it, and a
**term** that grows with every new leader.

The term is the leader's fencing token. Every write transaction a leader's
reconciler opens begins by taking a share lock on the lease row, on the
condition that the row still names its term and that the lease has not run
out by the database's clock (``fence_writes``); a deposed leader (paused
past its lease, cut off from the database) finds the condition false and
its transaction is refused before it writes anything. A new leader's
``take`` updates that row, so it waits for every write of the old term
still in flight to commit, and none can begin after it.

Why not an advisory lock (``pg_try_advisory_lock``, as ``tooz`` and
``pals`` use): it lasts as long as its session, and a leader stopped by
SIGSTOP (or hung) keeps its session and so its lock for ever; a lease
that runs out by the database's clock does not depend on the holder
being able to let go. Neither library gives a fencing token either.

What a session does say is when it has ended: the lease row names the
server process of the holder's lease connection (``holder_session``), and
once that process is gone from ``pg_stat_activity`` (the holder killed,
its connection dropped, the server restarted) the lease may be taken
before it runs out. The holder, for its part, stops at once when its
lease connection fails (``SessionLost``), since another may lead already;
any write it still tries is refused by the term.

SQLite serves one controller: it leads at once, in a term of its own, with
no lease to renew (``Leases.lasting``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, event, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from voe.errors import VoeError
from voe.store import schema
from voe.store.db import READ_ONLY
from voe.store.time import aware, now


class SessionLost(VoeError):
    """The lease connection failed: the lease may be taken from now on."""


class Deposed(VoeError):
    """A write of a term that no longer leads, refused by the database."""

    def __init__(self, term: int):
        super().__init__(f"term {term} no longer leads: the database refused this write "
                         "(another controller leads, or this one's lease ran out)")
        self.term = term


_acting = threading.local()


def act_for_term(term: int | None) -> None:
    """The calling thread writes for this term from now on (a leader's
    reconciler threads), or for none (``None``)."""
    _acting.term = term


def acting_term() -> int | None:
    return getattr(_acting, "term", None)


_LEASE = "voe_lease"
"""The lease's own transactions: they decide who leads, so they carry no term."""
_HOLDS = ("SELECT term FROM leadership WHERE id = 1 AND term = %(term)s AND expires_at > clock_timestamp() "
          "FOR SHARE")


def fence_writes(engine: Engine) -> None:
    """On PostgreSQL: each write transaction of a thread acting for a term
    first proves, in the database, that the term still leads (see the
    module's docstring); read-only transactions are left alone."""

    def begin(conn) -> None:
        term = acting_term()
        options = conn.get_execution_options()
        if term is None or options.get(READ_ONLY) or options.get(_LEASE):
            return
        if conn.exec_driver_sql(_HOLDS, {"term": term}).first() is None:
            raise Deposed(term)

    event.listen(engine, "begin", begin)


@dataclass(frozen=True)
class Controller:
    name: str
    url: str
    agents_url: str
    boot_url: str
    started_at: datetime
    renewed_at: datetime
    term: int | None
    leader: bool

    def as_dict(self) -> dict:
        return {"name": self.name, "url": self.url, "agents_url": self.agents_url, "boot_url": self.boot_url,
                "leader": self.leader, "term": self.term, "started_at": self.started_at.isoformat(),
                "renewed_at": self.renewed_at.isoformat()}


_TAKE = text("WITH before AS (SELECT holder FROM leadership WHERE id = 1) "
             "UPDATE leadership SET term = term + 1, holder = :me, holder_session = pg_backend_pid(), "
             "expires_at = clock_timestamp() + make_interval(secs => :lease) FROM before "
             "WHERE leadership.id = 1 AND (leadership.expires_at <= clock_timestamp() OR NOT EXISTS "
             "(SELECT 1 FROM pg_stat_activity WHERE pid = leadership.holder_session)) "
             "RETURNING leadership.term, before.holder")
_RENEW = text("UPDATE leadership SET expires_at = clock_timestamp() + make_interval(secs => :lease) "
              "WHERE id = 1 AND term = :term AND holder = :me AND holder_session = pg_backend_pid() "
              "AND expires_at > clock_timestamp() RETURNING term")
_PATIENCE = "SET LOCAL statement_timeout = {ms}"


@dataclass(frozen=True)
class Taken:
    term: int
    previous: str | None  # the controller that led the term before, if any


class Leases:
    """The lease and the table of controllers, for one controller (``me``).
    ``take`` and ``renew`` run on a connection of their own (the lease
    connection, whose server process the lease row names), from one
    thread."""

    def __init__(self, engine: Engine, me: str):
        self.engine, self.me = engine.execution_options(**{_LEASE: True}), me
        self.lasting = engine.dialect.name != "postgresql"  # one controller: its lease never runs out
        self._session: Connection | None = None

    @contextmanager
    def _on_session(self, patience: float) -> Iterator[Connection]:
        """A transaction on the lease connection, opened if need be; a
        failure that loses the connection raises ``SessionLost``."""
        if self._session is None:
            self._session = self.engine.connect()
        try:
            with self._session.begin():
                self._session.exec_driver_sql(_PATIENCE.format(ms=int(patience * 1000)))
                yield self._session
        except DBAPIError as e:
            if not e.connection_invalidated:
                raise
            self.close()
            raise SessionLost(f"the lease connection failed: {str(e.orig).splitlines()[0]}") from e

    def close(self) -> None:
        """Close the lease connection (its server process ends with it)."""
        session, self._session = self._session, None
        if session is not None:
            try:
                session.invalidate()  # not back to the pool: the session must end
                session.close()
            except DBAPIError:
                pass  # already gone

    def register(self, url: str, agents_url: str, boot_url: str) -> None:
        """This controller serves from now on, at these URLs."""
        t, at = schema.controllers, now()
        row = dict(url=url, agents_url=agents_url, boot_url=boot_url, started_at=at, renewed_at=at, term=None)
        with self.engine.begin() as c:
            if c.execute(update(t).where(t.c.name == self.me).values(**row)).rowcount == 0:
                c.execute(insert(t).values(name=self.me, **row))

    def alive(self, term: int | None = None) -> None:
        """A sign of life (and the term it leads, if it does)."""
        t = schema.controllers
        values: dict = {"renewed_at": now()}
        if term is not None:
            values["term"] = term
        with self.engine.begin() as c:
            c.execute(update(t).where(t.c.name == self.me).values(**values))

    def take(self, lease: float, patience: float) -> Taken | None:
        """The new term, if the lease was free (never held, run out,
        resigned, or its holder's session gone) and is now this
        controller's; else None."""
        if self.lasting:
            with self.engine.begin() as c:
                was = c.execute(select(schema.leadership).where(schema.leadership.c.id == 1)).one()
                c.execute(update(schema.leadership).where(schema.leadership.c.id == 1)
                          .values(term=was.term + 1, holder=self.me, expires_at=now() + timedelta(days=36500)))
            return Taken(was.term + 1, was.holder)
        try:
            with self._on_session(patience) as c:
                row = c.execute(_TAKE, {"me": self.me, "lease": lease}).first()
        except SessionLost:
            return None  # a follower's connection: the next try opens another
        return Taken(row.term, row.holder) if row is not None else None

    def renew(self, term: int, lease: float, patience: float) -> bool:
        """Whether the lease of ``term`` is this controller's for ``lease``
        more seconds; False: it had run out, or another leads."""
        if self.lasting:
            return True
        with self._on_session(patience) as c:
            return c.execute(_RENEW, {"me": self.me, "lease": lease, "term": term}).scalar() is not None

    def resign(self, term: int) -> None:
        """Let the lease go at once (a controller shutting down): another
        takes it without waiting for it to run out."""
        t = schema.leadership
        with self.engine.begin() as c:
            c.execute(update(t).where((t.c.id == 1) & (t.c.term == term) & (t.c.holder == self.me))
                      .values(expires_at=datetime(1970, 1, 1, tzinfo=now().tzinfo), holder_session=None))

    def controllers(self) -> list[Controller]:
        """Every controller that has served, the leader marked: the one
        named by an unexpired lease."""
        with self.engine.connect() as c:
            lease = c.execute(select(schema.leadership).where(schema.leadership.c.id == 1)).one()
            rows = c.execute(select(schema.controllers).order_by(schema.controllers.c.name)).all()
        leads = lease.holder if aware(lease.expires_at) > now() else None
        return [Controller(r.name, r.url, r.agents_url, r.boot_url, aware(r.started_at), aware(r.renewed_at),
                           r.term, r.name == leads and r.term == lease.term) for r in rows]
