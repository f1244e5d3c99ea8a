"""How long the event log keeps what it records, and the pruner that holds
it to that in the background.

``VOE_EVENT_RETENTION`` bounds the log by age, by count, or both
(``30d``, ``1000000``, ``30d,1000000``; ``off`` keeps everything); audit
events (who changed the inventory or a token) follow
``VOE_AUDIT_RETENTION``, an age, and never count toward the bound. The
pruner deletes in short batches with a pause between them, so the
reconciler's and the agents' writes never queue behind it."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from voe.store.events import EventLog
from voe.store.time import now

log = logging.getLogger("voe.retention")

AUDIT = "audit"
_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Retention:
    max_age: timedelta | None = timedelta(days=30)
    max_count: int | None = 1_000_000
    audit_age: timedelta | None = timedelta(days=365)
    interval: float = 60.0  # seconds between prunings; the first comes one interval after the start
    batch: int = 2000  # events read and deleted per transaction
    pause: float = 0.05  # seconds between two batches

    @classmethod
    def from_env(cls) -> Retention:
        values: dict = {}
        if "VOE_EVENT_RETENTION" in os.environ:
            values["max_age"], values["max_count"] = parse_bounds(os.environ["VOE_EVENT_RETENTION"],
                                                                  "VOE_EVENT_RETENTION")
        if "VOE_AUDIT_RETENTION" in os.environ:
            age, count = parse_bounds(os.environ["VOE_AUDIT_RETENTION"], "VOE_AUDIT_RETENTION")
            if count is not None:
                raise ValueError(f"VOE_AUDIT_RETENTION={os.environ['VOE_AUDIT_RETENTION']!r}: audit events are "
                                 "kept by age only: set it like VOE_AUDIT_RETENTION=365d, or off")
            values["audit_age"] = age
        return cls(**values)

    def verdict(self, cutoff: datetime | None, audit_cutoff: datetime | None,
                beyond_id: int) -> Callable[[int, str, datetime], bool | None]:
        """What ``EventLog.prune_batch`` asks of each event: due (True),
        kept (False), or None from the first event that no bound reaches,
        since every later one is newer still."""
        def due(event_id: int, kind: str, at: datetime) -> bool | None:
            if kind == AUDIT:
                return audit_cutoff is not None and at < audit_cutoff
            if event_id <= beyond_id or (cutoff is not None and at < cutoff):
                return True
            return None if (audit_cutoff is None or at >= audit_cutoff) else False
        return due


def parse_bounds(text: str, variable: str) -> tuple[timedelta | None, int | None]:
    """``30d``, ``1000000``, ``30d,1000000`` or ``off`` as (age, count)."""
    age: timedelta | None = None
    count: int | None = None
    if text.strip().lower() == "off":
        return None, None
    for part in (p.strip() for p in text.split(",")):
        match = _AGE.match(part)
        if match and age is None:
            age = timedelta(seconds=float(match[1]) * _SECONDS[match[2]])
        elif part.isdigit() and count is None and int(part) > 0:
            count = int(part)
        else:
            raise ValueError(f"{variable}={text!r}: {part!r} is neither an age (30d, 12h) nor a count of events "
                             f"(1000000): set it like {variable}=30d,1000000, or off")
    return age, count


class EventPruner:
    """Holds the event log to its retention while the controller runs; the
    thread is its own, and ends when ``stop`` is set."""

    def __init__(self, events: EventLog, retention: Retention, report: Callable[..., None]):
        self.events, self.retention, self._report = events, retention, report
        self._thread: threading.Thread | None = None

    def start(self, stop: threading.Event) -> None:
        r = self.retention
        if r.max_age is None and r.max_count is None and r.audit_age is None:
            return
        self._thread = threading.Thread(target=self._run, args=(stop,), name="voe-event-pruner", daemon=True)
        self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.retention.interval):
            try:
                self.prune(stop)
            except Exception:  # the store away for a moment: the next round tries again
                log.exception("pruning the event log failed")

    def prune(self, stop: threading.Event | None = None) -> int:
        """One round over the log's oldest events; how many were deleted."""
        r = self.retention
        at = now()
        beyond_id = self.events.id_beyond_newest(r.max_count) if r.max_count is not None else 0
        verdict = r.verdict(at - r.max_age if r.max_age else None, at - r.audit_age if r.audit_age else None,
                            beyond_id)
        deleted = 0
        after: int | None = 0
        while after is not None:
            n, after = self.events.prune_batch(after, r.batch, verdict)
            deleted += n
            if after is not None and stop is not None and stop.wait(r.pause):
                break
        if deleted:
            self._report("info", "retention", f"pruned {deleted} events (retention: {_describe(r)})",
                         data={"deleted": deleted})
        return deleted


def _describe(r: Retention) -> str:
    parts = []
    if r.max_age is not None:
        parts.append(f"{r.max_age.total_seconds() / 86400:g} days")
    if r.max_count is not None:
        parts.append(f"{r.max_count:,} events")
    if r.audit_age is not None:
        parts.append(f"audit {r.audit_age.total_seconds() / 86400:g} days")
    return ", ".join(parts) or "off"
