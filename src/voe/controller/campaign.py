"""A controller's bid for leadership: it takes the lease when it is free,
renews it while it leads, and acts (runs its reconciler) only while its
lease holds by its own clock (see ``store.leadership``).

A follower tries to take the lease every ``FOLLOW_EVERY`` seconds: it is
free when it has run out, and as soon as the leader's lease connection
has ended (the leader killed, or cut off), so a dead leader is replaced
in a fraction of a second and a hung one within its lease.

A leader that cannot renew in time (its database gone, its process paused)
stops acting when its lease runs out by its own monotonic clock, which
started before the renewal that set the lease, so it stops no later than
the database lets another take over; its writes still in flight are
refused by the database. It then hands back to its owner
(``on_deposed``), which starts the controller again as a follower: nothing
of the lost term's memory (a silence half counted, a step half done) is
carried into a later one."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from voe.store.leadership import Leases, SessionLost, Taken

log = logging.getLogger("voe.campaign")

RENEWALS_PER_LEASE = 5
"""A leader renews this many times per lease: a renewal lost now and then
costs nothing."""
FOLLOW_EVERY = 0.1
"""Seconds between a follower's tries to take the lease."""
WATCH_EVERY = 0.05
"""Seconds between a leader's looks at its own lease (a pause resumed, a
renewal stuck on a dead connection)."""


class Campaign:
    def __init__(self, leases: Leases, lease: float, lead: Callable[[int, str | None], None],
                 on_deposed: Callable[[int], None], renewed: Callable[[], None] = lambda: None):
        """``lead(term, previous)``: begin acting as leader of ``term``,
        after the controller named ``previous`` (None: no controller led);
        ``on_deposed(term)``: stop acting at once (called once, from a
        thread of this campaign's); ``renewed``: after each renewal (what
        a leader keeps fresh, such as the list of controllers)."""
        self.leases, self.lease = leases, lease
        self._lead, self._on_deposed, self._renewed = lead, on_deposed, renewed
        self.term: int | None = None
        self._valid_until = 0.0  # monotonic: the lease's end as this controller counts it
        self._deposed = threading.Event()
        self._depose_lock = threading.Lock()
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []

    def leads(self) -> bool:
        """Whether this controller may act now: it leads, and its lease holds."""
        return self.term is not None and not self._deposed.is_set() and (
            self.leases.lasting or time.monotonic() < self._valid_until)

    def start(self) -> None:
        for target, name in ((self._run, "voe-campaign"), (self._watch, "voe-lease-watch")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Stop competing; a leader lets its lease go, so another leads at once."""
        self._closed.set()
        for t in self._threads:
            t.join(self.lease + 1)
        if self.term is not None and not self._deposed.is_set():
            try:
                self.leases.resign(self.term)
            except Exception:  # the lease runs out by itself
                log.exception("could not resign the lease of term %s", self.term)
        self.leases.close()

    def _run(self) -> None:
        # alone on its store, a controller only says it is alive
        renew_every = self.lease if self.leases.lasting else self.lease / RENEWALS_PER_LEASE
        patience = renew_every
        next_alive = 0.0  # monotonic: when a follower next says it is alive
        while not self._closed.is_set() and not self._deposed.is_set():
            asked = time.monotonic()
            try:
                if self.term is None:
                    taken = self.leases.take(self.lease, patience)
                    if taken is not None:
                        self._valid_until = asked + self.lease
                        self.term = taken.term
                        log.info("this controller leads, in term %d", taken.term)
                        if not self._begin(taken):
                            return
                        continue
                    if asked >= next_alive:
                        self.leases.alive()
                        next_alive = asked + renew_every
                    wait = renew_every if self.leases.lasting else FOLLOW_EVERY
                elif self.leases.renew(self.term, self.lease, patience):
                    self._valid_until = asked + self.lease
                    self.leases.alive(self.term)
                    self._renewed()
                    wait = renew_every - (time.monotonic() - asked)
                else:
                    self._depose("another controller leads, or the lease ran out before it was renewed")
                    return
            except SessionLost as e:  # a leader's: another may take the lease from now on
                self._depose(str(e))
                return
            except Exception as e:  # the database unreachable: try again; the watch deposes in time
                log.warning("leadership: the database did not answer (%s)", e)
                wait = min(renew_every, 0.5)
            self._closed.wait(max(wait, 0.0))

    def _begin(self, taken: Taken) -> bool:
        """Act as the leader of the term just taken; a leader that could
        not begin (its database failing it halfway) hands the term over
        rather than hold a lease it does not act on."""
        try:
            self._lead(taken.term, taken.previous)
        except Exception as e:
            log.exception("could not begin to lead term %d", taken.term)
            self._depose(f"it could not begin to lead ({e})")
            return False
        self.leases.alive(taken.term)
        return True

    def _watch(self) -> None:
        if self.leases.lasting:
            return  # one controller on its store: nobody else could lead, whatever its pauses
        while not self._closed.wait(WATCH_EVERY) and not self._deposed.is_set():
            if self.term is not None and time.monotonic() >= self._valid_until:
                self._depose(f"its lease of {self.lease:g} s ran out before it could renew it")

    def _depose(self, why: str) -> None:
        with self._depose_lock:
            if self._deposed.is_set():
                return
            self._deposed.set()
        log.error("this controller no longer leads term %s: %s", self.term, why)
        self._on_deposed(self.term)
