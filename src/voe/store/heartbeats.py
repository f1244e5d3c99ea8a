"""The agents' heartbeats, as the controller knows them: the newest beat of
each persona in memory, written to the store in the background when what
an agent says changes, and otherwise every few seconds, so that a restarted
controller and the status views see a recent beat without a store write per
beat.

Controllers that share a database relay the beats they hear to each other
(``relay``): one row per controller every ``RELAY_EVERY`` seconds, holding
the newest beat of each persona it heard since its last row, so that the
leader knows of a beat that reached any controller within a fraction of a
heartbeat interval, at a cost of one write per controller, not one per
beat."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, and_, bindparam, delete, func, insert, or_, select, update

from voe.store import schema
from voe.store.time import aware, now

log = logging.getLogger("voe.store.heartbeats")

HEARTBEAT_PERSIST_EVERY = 5.0
"""Seconds between writes of an unchanged heartbeat (see ``Heartbeats.record``)."""
HEARTBEAT_FLUSH_EVERY = 0.5
"""Seconds between the writes of the beats due (see ``Heartbeats.flush``)."""
RELAY_EVERY = 0.1
"""Seconds between a controller's relay rows, and between its reads of the
others' (see ``Heartbeats.relay``)."""
RELAY_KEEP = 10.0
"""Seconds a relay row is kept: longer than any reader is late."""
IN_MEMORY_ONLY = ("told", "via")
"""What a beat carries in memory and not in its row: the interval its
answer told (see ``controller.pacing``), and the controller that relayed
it (None: heard by this one)."""
_UPDATE_BEAT = update(schema.heartbeats).where(schema.heartbeats.c.persona == bindparam("who"))
"""Built once: a beat is the most frequent write there is."""


class Heartbeats:
    def __init__(self, engine: Engine, reader: Engine, on_news: Callable[[str], None]):
        """``on_news``: called with a persona whose agent says something
        new (generation, ready, stopping): its next move may have changed."""
        self._engine, self._reader, self._on_news = engine, reader, on_news
        self._beats: dict[str, dict] = {}
        self._beats_written: dict[str, datetime] = {}
        self._beats_due: set[str] = set()  # personas whose beat is to be written at the next flush
        self._beats_lock = threading.Lock()
        self.received = 0  # beats recorded by this process since it started (a metric)
        self._flusher: threading.Thread | None = None
        self._closed = threading.Event()
        self._beats_seeded = False  # the stored beats are read once, at the first look
        self._heard: dict[str, dict] = {}  # beats heard since the last relay row (see ``relay``)
        self._relay: _Relay | None = None
        self._whole_since: datetime | None = None  # see ``heard_whole_since``
        self._read_at = 0.0  # monotonic: the last read of the other controllers' relay rows

    def record(self, persona: str, generation: int, ready: bool, stopping: bool, report: dict,
                         told: float | None = None) -> None:
        """Beats arrive several times a second per persona: they are kept in
        memory, and the row is written only when what the agent says changes
        (generation, ready, stopping, its report) or every
        ``HEARTBEAT_PERSIST_EVERY`` seconds, so a restarted controller and
        the status views see a recent beat without a write per beat; and it
        is written within ``HEARTBEAT_FLUSH_EVERY``, by the flusher, not by
        the caller. ``told``: the interval the answer to this beat tells
        the agent (kept in memory only; see ``controller.pacing``)."""
        beat = dict(persona=persona, generation=generation, at=now(), ready=ready, stopping=stopping, report=report,
                    told=told, via=None)
        with self._beats_lock:
            self.received += 1
            last = self._beats.get(persona)
            self._beats[persona] = beat
            if self._relay is not None:
                self._heard[persona] = beat
            written = self._beats_written.get(persona)
            news = last is None or any(last[k] != beat[k] for k in ("generation", "ready", "stopping"))
            due = (news or written is None or (beat["at"] - written).total_seconds() >= HEARTBEAT_PERSIST_EVERY
                   or _lasting(last["report"]) != _lasting(beat["report"]))
            if due:
                self._beats_written[persona] = beat["at"]
            if due:
                self._beats_due.add(persona)
                if self._flusher is None:
                    self._flusher = threading.Thread(target=self._flush_until_closed, name="voe-beats", daemon=True)
                    self._flusher.start()
        if news:
            self._on_news(persona)

    def flush(self) -> None:
        """Write the beats due (see ``record``) in one transaction."""
        with self._beats_lock:
            due = {p: self._beats[p] for p in self._beats_due}
            self._beats_due.clear()
        if not due:
            return
        t = schema.heartbeats
        rows = [{k: v for k, v in beat.items() if k not in IN_MEMORY_ONLY} for _, beat in sorted(due.items())]
        try:
            with self._engine.begin() as c:
                # three statements, not one or two per beat
                stored = set(c.execute(select(t.c.persona).where(t.c.persona.in_(list(due)))).scalars())
                new = [r for r in rows if r["persona"] not in stored]
                old = [{k: v for k, v in r.items() if k != "persona"} | {"who": r["persona"]}
                       for r in rows if r["persona"] in stored]
                if new:
                    c.execute(insert(t), new)
                if old:
                    c.execute(_UPDATE_BEAT, old)
        except Exception:
            with self._beats_lock:  # due still: the next flush writes their newest beat
                self._beats_due |= due.keys()
            raise

    def _flush_until_closed(self) -> None:
        """Beats are written every ``HEARTBEAT_FLUSH_EVERY``, all at once, by
        this thread, not one transaction per beat by the API's threads."""
        failing = False
        while not self._closed.wait(HEARTBEAT_FLUSH_EVERY):
            try:
                self.flush()
                failing = False
            except Exception as e:  # the next round tries again; a beat lost costs nothing but its row's age
                if not failing:
                    log.warning("could not write heartbeats (%s); trying again", str(e).splitlines()[0])
                failing = True

    def relay(self, me: str) -> None:
        """From now on, relay the beats this controller hears to the other
        controllers of the database, as ``me``, and take in theirs."""
        self._relay = _Relay(self._engine, me)
        threading.Thread(target=self._relay_until_closed, name="voe-beat-relay", daemon=True).start()

    def _relay_until_closed(self) -> None:
        failing = False
        while not self._closed.wait(RELAY_EVERY):
            try:
                self.relay_once()
                failing = False
            except Exception as e:  # the next round tries again: the beats heard meanwhile wait for it
                self._whole_since = None  # what the others relay meanwhile may be missed
                if not failing:
                    log.warning("could not relay heartbeats (%s); trying again", str(e).splitlines()[0])
                failing = True

    def relay_once(self) -> None:
        """Write the beats heard since the last row, read the others' rows."""
        relay = self._relay
        assert relay is not None
        with self._beats_lock:
            heard, self._heard = self._heard, {}
        try:
            relay.publish(heard)
        except Exception:
            with self._beats_lock:  # heard still: the next row carries them, unless newer ones came
                self._heard = heard | self._heard
            raise
        news = []
        taken_in = relay.take_in()
        read_at = time.monotonic()
        if self._whole_since is None or read_at - self._read_at > RELAY_KEEP / 2:
            self._whole_since = now()  # rows may have been pruned unread before this read
        self._read_at = read_at
        for persona, beat in taken_in:
            with self._beats_lock:
                last = self._beats.get(persona)
                if last is not None and last["at"] >= beat["at"]:
                    continue
                kept = last["report"] if last is not None and last["generation"] == beat["generation"] else {}
                self._beats[persona] = beat | {"report": kept}
            if last is None or any(last[k] != beat[k] for k in ("generation", "ready", "stopping")):
                news.append(persona)
        for persona in news:
            self._on_news(persona)

    def relayed_at(self, controller: str) -> datetime | None:
        """When a row of ``controller`` was last taken in (one comes every
        ``RELAY_EVERY`` from each controller that relays, beats or none):
        older than a few of those, its agents' beats no longer reach this
        controller (it is paused, or cut off from the database)."""
        return self._relay.row_read_at.get(controller) if self._relay is not None else None

    def heard_whole_since(self) -> datetime | None:
        """Since when this controller has known every beat that any
        controller of its database heard (but the last ``RELAY_EVERY``'s):
        since its first read of the others' relay rows after it began, or
        after a read failed or came later than rows are kept. None when it
        does not relay, or its reads lag now (what it knows may be stale)."""
        if self._whole_since is None or time.monotonic() - self._read_at > 3 * RELAY_EVERY:
            return None
        return self._whole_since

    def close(self) -> None:
        """Stop writing beats, after writing those due."""
        self._closed.set()
        if self._flusher is not None:
            self._flusher.join(5)
        self.flush()

    def newest(self) -> dict[str, dict]:
        """The newest beat of each persona: this process's, else the stored one."""
        if not self._beats_seeded:
            with self._reader.connect() as c:
                rows = c.execute(select(schema.heartbeats)).all()
            with self._beats_lock:
                for r in rows:
                    self._beats.setdefault(r.persona, {**r._mapping, "at": aware(r.at)})
                self._beats_seeded = True
        with self._beats_lock:
            return dict(self._beats)

    def of(self, persona: str) -> dict | None:
        return self.newest().get(persona)


class _Relay:
    """One controller's rows of ``beat_relay`` and its place in the others'."""

    def __init__(self, engine: Engine, me: str):
        self.engine, self.me = engine, me
        t = schema.beat_relay
        with engine.connect() as c:
            self.seq = c.execute(select(func.max(t.c.seq)).where(t.c.controller == me)).scalar() or 0
        self.read_to: dict[str, int] = {}  # each other controller's last row taken in
        self.row_read_at: dict[str, datetime] = {}  # ... and when it was read
        self._pruned = 0.0

    def publish(self, heard: dict[str, dict]) -> None:
        """A row of the beats heard, empty if none: a controller's rows
        coming are the sign that its agents' beats still reach the others
        (see ``Heartbeats.relayed_at``)."""
        t, at = schema.beat_relay, now()
        with self.engine.begin() as c:
            self.seq += 1
            c.execute(insert(t).values(controller=self.me, seq=self.seq, at=at, beats={
                p: [b["generation"], b["at"].timestamp(), b["ready"], b["stopping"], b["told"]]
                for p, b in heard.items()}))
            if at.timestamp() - self._pruned >= RELAY_KEEP / 2:
                c.execute(delete(t).where((t.c.controller == self.me) & (t.c.at < at - timedelta(seconds=RELAY_KEEP))))
                self._pruned = at.timestamp()

    def take_in(self) -> list[tuple[str, dict]]:
        """The beats of the other controllers' rows not taken in yet, oldest first."""
        t = schema.beat_relay
        known = [and_(t.c.controller == name, t.c.seq > seq) for name, seq in self.read_to.items()]
        unknown = and_(t.c.controller.notin_([self.me, *self.read_to]),
                       t.c.at > now() - timedelta(seconds=RELAY_KEEP))
        with self.engine.connect() as c:
            rows = c.execute(select(t.c.controller, t.c.seq, t.c.beats).where(or_(unknown, *known))
                             .order_by(t.c.seq)).all()
        read_at = now()
        beats = []
        for r in rows:
            self.read_to[r.controller] = max(self.read_to.get(r.controller, 0), r.seq)
            self.row_read_at[r.controller] = read_at
            for persona, (generation, at, ready, stopping, told) in r.beats.items():
                beats.append((persona, dict(persona=persona, generation=generation,
                                            at=datetime.fromtimestamp(at, UTC), ready=ready, stopping=stopping,
                                            told=told, via=r.controller)))
        return beats


def _lasting(report: dict) -> dict:
    """What an agent reports, less what changes at every beat (its uptime):
    a change in the rest is news worth a write; the uptime alone waits for
    ``HEARTBEAT_PERSIST_EVERY``, else every beat would be a store write."""
    return {k: v for k, v in report.items() if k != "uptime"}
