"""The last line of defence of 'a persona never runs twice', in the store
itself: no new incarnation while an earlier one has no recorded evidence,
even when many threads race for it."""

from __future__ import annotations

import threading

import pytest

from voe.store.runtime import DoubleStartRefused


def test_second_incarnation_is_refused_until_the_first_has_evidence(services):
    rt = services.runtime
    assert rt.begin_incarnation("web-1", "vm", "dl360-1", "web-1", "02:56:4f:00:00:07", "test") == 1
    with pytest.raises(DoubleStartRefused) as e:
        rt.begin_incarnation("web-1", "physical", "dl360-2", None, "00:0b:cd:02:00:01", "test")
    assert "generation(s) [1] have not ended with evidence" in str(e.value)
    rt.end_incarnation("web-1", 1, "hypervisor dl360-1 reads VM web-1 off after destroy")
    assert rt.begin_incarnation("web-1", "physical", "dl360-2", None, "00:0b:cd:02:00:01", "test") == 2
    history = rt.history("web-1")
    assert [(i.generation, i.evidence is not None) for i in history] == [(2, False), (1, True)]


def test_racing_starts_create_exactly_one_incarnation(services):
    rt = services.runtime
    barrier = threading.Barrier(8)
    won, refused = [], []

    def race(i: int) -> None:
        barrier.wait()
        try:
            won.append(rt.begin_incarnation("db", "physical", f"h{i}", None, f"00:00:00:00:00:{i:02x}", "race"))
        except DoubleStartRefused:
            refused.append(i)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert won == [1] and len(refused) == 7
    assert len([i for i in rt.live() if i.persona == "db"]) == 1


def test_refusal_is_logged_loudly(services):
    rt = services.runtime
    rt.begin_incarnation("x", "vm", "h", "x", "02:00:00:00:00:01", "t")
    with pytest.raises(DoubleStartRefused):
        rt.begin_incarnation("x", "vm", "h", "x", "02:00:00:00:00:01", "t")
    from voe.store.events import EventQuery

    events = services.events.query(EventQuery(persona="x", kind="safety"))
    assert events and events[0]["severity"] == "critical"


def test_a_level_placed_at_once_refuses_only_the_persona_still_live(services):
    """A group start records a whole level's placements in one transaction:
    one persona whose earlier incarnation is live is refused alone, one no
    longer placing is skipped, and the others begin and move on."""
    from voe.domain.lifecycle import Event, State
    from voe.store.runtime import Placed, StaleState

    rt = services.runtime
    for name in ("web-1", "web-2"):
        rt.transition(name, State.STOPPED, Event.START)
    assert rt.begin_incarnation("web-2", "vm", "dl360-1", "web-2", "02:56:4f:00:00:08", "still running") == 1
    outcome = rt.place([Placed("web-1", "vm", "dl360-1", "web-1", "02:56:4f:00:00:07", "fits"),
                        Placed("web-2", "vm", "dl360-1", "web-2", "02:56:4f:00:00:08", "fits"),
                        Placed("bea-1", "physical", "dl360-2", None, "00:0b:cd:02:00:01", "fits")])  # never started
    assert outcome["web-1"] == 1
    assert isinstance(outcome["web-2"], DoubleStartRefused)
    assert isinstance(outcome["bea-1"], StaleState)
    assert rt.state_of("web-1").state == State.POWERING_ON
    assert rt.state_of("web-2").state == State.PLACING
    assert sorted((i.persona, i.generation) for i in rt.live()) == [("web-1", 1), ("web-2", 1)]
    assert rt.history("bea-1") == []  # its incarnation was rolled back with its refused move
