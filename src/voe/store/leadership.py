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

SQLite serves one controller: it leads at once, in a term of its own, with
no lease to renew (``Leases.lasting``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, event, insert, select, text, update

from voe.errors import VoeError
from voe.store import schema
from voe.store.db import READ_ONLY
from voe.store.time import aware, now


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


_TAKE = text("UPDATE leadership SET term = term + 1, holder = :me, "
             "expires_at = clock_timestamp() + make_interval(secs => :lease) "
             "WHERE id = 1 AND expires_at <= clock_timestamp() RETURNING term")
_RENEW = text("UPDATE leadership SET expires_at = clock_timestamp() + make_interval(secs => :lease) "
              "WHERE id = 1 AND term = :term AND holder = :me AND expires_at > clock_timestamp() RETURNING term")
_EXPIRES_IN = text("SELECT extract(epoch FROM expires_at - clock_timestamp()) FROM leadership WHERE id = 1")
_PATIENCE = "SET LOCAL statement_timeout = {ms}"


class Leases:
    """The lease and the table of controllers, for one controller (``me``)."""

    def __init__(self, engine: Engine, me: str):
        self.engine, self.me = engine.execution_options(**{_LEASE: True}), me
        self.lasting = engine.dialect.name != "postgresql"  # one controller: its lease never runs out

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

    def take(self, lease: float, patience: float) -> int | None:
        """The new term, if the lease was free (never held, run out, or
        resigned) and is now this controller's; else None."""
        if self.lasting:
            with self.engine.begin() as c:
                term = c.execute(select(schema.leadership.c.term).where(schema.leadership.c.id == 1)).scalar_one() + 1
                c.execute(update(schema.leadership).where(schema.leadership.c.id == 1)
                          .values(term=term, holder=self.me, expires_at=now() + timedelta(days=36500)))
            return term
        with self.engine.begin() as c:
            c.exec_driver_sql(_PATIENCE.format(ms=int(patience * 1000)))
            return c.execute(_TAKE, {"me": self.me, "lease": lease}).scalar()

    def renew(self, term: int, lease: float, patience: float) -> bool:
        """Whether the lease of ``term`` is this controller's for ``lease``
        more seconds; False: it had run out, or another leads."""
        if self.lasting:
            return True
        with self.engine.begin() as c:
            c.exec_driver_sql(_PATIENCE.format(ms=int(patience * 1000)))
            return c.execute(_RENEW, {"me": self.me, "lease": lease, "term": term}).scalar() is not None

    def resign(self, term: int) -> None:
        """Let the lease go at once (a controller shutting down): another
        takes it without waiting for it to run out."""
        t = schema.leadership
        with self.engine.begin() as c:
            c.execute(update(t).where((t.c.id == 1) & (t.c.term == term) & (t.c.holder == self.me))
                      .values(expires_at=datetime(1970, 1, 1, tzinfo=now().tzinfo)))

    def expires_in(self) -> float:
        """Seconds until the lease runs out (negative: it has)."""
        if self.lasting:
            return 0.0
        with self.engine.connect() as c:
            return float(c.execute(_EXPIRES_IN).scalar_one())

    def controllers(self) -> list[Controller]:
        """Every controller that has served, the leader marked: the one
        named by an unexpired lease."""
        with self.engine.connect() as c:
            lease = c.execute(select(schema.leadership).where(schema.leadership.c.id == 1)).one()
            rows = c.execute(select(schema.controllers).order_by(schema.controllers.c.name)).all()
        leads = lease.holder if aware(lease.expires_at) > now() else None
        return [Controller(r.name, r.url, r.agents_url, r.boot_url, aware(r.started_at), aware(r.renewed_at),
                           r.term, r.name == leads and r.term == lease.term) for r in rows]
