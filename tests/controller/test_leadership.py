"""Leadership on PostgreSQL: one lease, a term that grows with every
leader, and a database that refuses the writes of a term that no longer
leads (the fencing token)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.conftest import new_store
from voe.controller.campaign import Campaign
from voe.domain.lifecycle import Event, State
from voe.store.events import EventQuery
from voe.store.leadership import Deposed, Leases, Taken, act_for_term


@pytest.fixture
def pg(tmp_path):
    from voe.controller.services import Services

    with new_store("postgresql") as url:
        s = Services.open(tmp_path / "data", url)
        yield s
        s.close()


def test_one_lease_and_a_term_per_leader(pg):
    a, b = Leases(pg.engine, "a"), Leases(pg.engine, "b")
    for leases in (a, b):
        leases.register(f"https://{leases.me}", f"https://{leases.me}/agents", "http://boot")
    taken = a.take(lease=1.0, patience=1.0)
    assert (taken.term, taken.previous) == (1, None)
    term = taken.term
    assert b.take(lease=1.0, patience=1.0) is None, "a second controller took a lease that holds"
    assert a.renew(term, lease=1.0, patience=1.0)
    assert [c.name for c in a.controllers() if c.leader] == []  # a has not said which term it leads yet
    a.alive(term)
    assert [(c.name, c.term) for c in b.controllers() if c.leader] == [("a", 1)]
    time.sleep(1.1)
    assert not a.renew(term, lease=1.0, patience=1.0), "a lease that ran out was renewed"
    assert b.take(lease=1.0, patience=1.0) == Taken(2, "a")
    assert not a.renew(term, lease=1.0, patience=1.0)
    b.resign(2)
    assert a.take(lease=1.0, patience=1.0) == Taken(3, "b"), "a resigned lease is free at once"


def test_a_lease_is_free_once_its_holders_session_has_ended(pg):
    """A holder killed (or cut off) ends its lease connection: another takes
    the lease at once, not when it runs out; the old holder cannot renew."""
    a, b = Leases(pg.engine, "a"), Leases(pg.engine, "b")
    held = a.take(lease=30.0, patience=1.0)
    assert b.take(lease=30.0, patience=1.0) is None, "taken from a holder whose session lives"
    a.close()  # as the kernel does for a process killed
    began = time.monotonic()
    while (taken := b.take(lease=30.0, patience=1.0)) is None:
        assert time.monotonic() - began < 2.0, "the lease stayed the ended session's"
        time.sleep(0.01)
    assert taken == Taken(held.term + 1, "a")
    assert not a.renew(held.term, lease=30.0, patience=1.0)


def test_the_database_refuses_a_deposed_leaders_writes(pg):
    """A leader paused past its lease wakes to find another leading: every
    write it then tries is refused by the database, while the new
    leader's and the followers' own (no term) go through."""
    a, b = Leases(pg.engine, "a"), Leases(pg.engine, "b")
    old = a.take(lease=0.5, patience=1.0).term
    rt = pg.runtime
    act_for_term(old)
    try:
        rt.transition("web", State.STOPPED, Event.DEPENDENCIES_PENDING, "leader a")
        time.sleep(0.6)  # "paused": the lease runs out
        with pytest.raises(Deposed):
            rt.transition("web", State.WAITING, Event.DEPENDENCIES_READY, "a, after its lease ran out")
        new = b.take(lease=5.0, patience=1.0).term
        with pytest.raises(Deposed):
            rt.transition("web", State.WAITING, Event.DEPENDENCIES_READY, "a, deposed")
        act_for_term(new)
        rt.transition("web", State.WAITING, Event.DEPENDENCIES_READY, "leader b")
    finally:
        act_for_term(None)
    rt.set_intent("web", retry_at=None)  # a follower's API write carries no term
    assert rt.state_of("web").state == State.PLACING
    reasons = [e["message"] for e in pg.events.query(EventQuery(kind="transition"))]
    assert not any("a, " in m for m in reasons), reasons


def test_a_takeover_waits_for_the_old_terms_write_in_flight(pg):
    """The new leader's ``take`` updates the row each write of the old term
    holds a share lock on: it cannot complete while such a write is open,
    and no write of the old term begins after it."""
    a, b = Leases(pg.engine, "a"), Leases(pg.engine, "b")
    old = a.take(lease=0.3, patience=1.0).term
    act_for_term(old)
    try:
        with pg.engine.begin() as c:  # the old term's write, begun in time
            time.sleep(0.4)  # the lease runs out while it is open
            took: list[Taken | None] = []
            t = threading.Thread(target=lambda: took.append(b.take(lease=5.0, patience=5.0)))
            t.start()
            t.join(0.3)
            assert t.is_alive(), "the takeover did not wait for the old term's open write"
            c.exec_driver_sql("SELECT 1")
        t.join(5)
        assert took == [Taken(2, "a")]
    finally:
        act_for_term(None)


def test_a_leader_that_cannot_renew_steps_down_within_its_lease(pg):
    """Its database gone (here: renewals failing), a leader stops acting
    when its lease runs out by its own clock, before another may lead."""
    leases = Leases(pg.engine, "a")
    led, deposed = [], threading.Event()
    campaign = Campaign(leases, 0.6, lambda term, previous: led.append(term), lambda term: deposed.set())
    campaign.start()
    try:
        deadline = time.monotonic() + 5
        while not led and time.monotonic() < deadline:
            time.sleep(0.01)
        assert led == [1] and campaign.leads()

        def unreachable(*a, **k):
            raise OSError("the database does not answer")
        leases.renew = unreachable  # type: ignore[method-assign]
        began = time.monotonic()
        assert deposed.wait(3)
        assert time.monotonic() - began <= 0.6 + 0.1
        assert not campaign.leads()
    finally:
        campaign.stop()


def test_a_leader_that_cannot_begin_hands_the_lease_over_at_once(pg):
    """Its database failing it while it begins (the reconciler's first
    writes), a controller does not sit on a lease it does not act on: it
    steps down, and another leads without waiting for the lease to run out."""
    a, b = Leases(pg.engine, "a"), Leases(pg.engine, "b")
    deposed = threading.Event()

    def cannot_begin(term, previous):
        raise OSError("the database went away")
    campaign = Campaign(a, 30, cannot_begin, lambda term: (a.close(), deposed.set()))
    campaign.start()
    try:
        assert deposed.wait(5)
        assert not campaign.leads()
        assert b.take(30, 1) == Taken(2, "a")
    finally:
        campaign.stop()
        b.close()


def test_a_beat_heard_by_one_controller_reaches_the_others_in_one_row(pg):
    """Followers relay their beats; the leader takes them in, told of each
    persona whose agent says something new, with no write per beat."""
    from voe.store import schema
    from voe.store.heartbeats import Heartbeats, _Relay

    news: list[str] = []
    leader = Heartbeats(pg.engine, pg.engine, on_news=news.append)
    follower = Heartbeats(pg.engine, pg.engine, on_news=lambda p: None)
    leader._relay, follower._relay = _Relay(pg.engine, "leader"), _Relay(pg.engine, "follower")
    for n in range(50):
        follower.record(f"p{n:02d}", 1, True, False, {"uptime": 1.0}, told=0.25)
    follower.record("p00", 1, True, True, {"uptime": 1.2}, told=0.25)  # the newest beat of p00 wins
    follower.relay_once()
    leader.relay_once()
    with pg.engine.connect() as c:
        rows = c.execute(schema.beat_relay.select().where(schema.beat_relay.c.controller == "follower")).all()
    assert len(rows) == 1 and len(rows[0].beats) == 50
    beats = leader.newest()
    assert sorted(beats) == [f"p{n:02d}" for n in range(50)]
    assert beats["p00"]["stopping"] is True and beats["p07"]["generation"] == 1
    assert beats["p07"]["via"] == "follower"  # what a new leader's grace asks of each beat
    assert leader.heard_whole_since() is not None  # every row read since its first read
    assert leader.relayed_at("follower") is not None and leader.relayed_at("nobody") is None
    assert Heartbeats(pg.engine, pg.engine, on_news=news.append).heard_whole_since() is None  # relays nothing
    assert sorted(news) == sorted(beats)
    news.clear()
    leader.relay_once()  # a row taken in once is not taken in again
    assert news == []
