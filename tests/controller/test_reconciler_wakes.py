"""The reconciler sees an operator's change at once, and a tick that only
waited (for the store's writer, behind an apply of a whole datacenter)
does not put off the next full pass: a new datacenter applied while a tick
waited would go unseen until the next full pass, and its switches'
drivers would be built by the first group start, on its critical path."""

from __future__ import annotations

import threading
import time

import pytest

from harness import load
from tests.controller.conftest import watching
from voe.controller.reconciler import FULL_PASS_SHARE, FULL_PASSES_PER_BEAT, Reconciler
from voe.domain.inventory import parse
from voe.store.runtime import Placed


def test_an_inventory_write_wakes_the_reconciler(services):
    services.runtime.changed.clear()
    services.inventory.write(lambda _: parse(load()))
    assert services.runtime.changed.is_set()
    services.runtime.changed.clear()
    services.inventory.write(lambda current: current)  # nothing changed: nothing to wake for
    assert not services.runtime.changed.is_set()


def test_a_tick_with_nothing_to_move_does_not_queue_for_the_stores_writer(services):
    """An apply holds the writer for seconds; a tick that moves no persona
    has no business waiting for it."""
    if services.engine.dialect.name != "sqlite":
        pytest.skip("only SQLite serializes writers: on PostgreSQL an empty transaction waits for nobody")
    holding, release = threading.Event(), threading.Event()

    def long_write():
        with services.engine.begin() as c:
            services.events.append("info", "test", "a long write", conn=c)
            holding.set()
            release.wait(10)

    writer = threading.Thread(target=long_write)
    writer.start()
    try:
        holding.wait(5)
        began = time.monotonic()
        assert services.runtime.transitions([]) == []
        assert time.monotonic() - began < 1.0
    finally:
        release.set()
        writer.join()


def test_a_full_pass_that_waited_does_not_put_off_the_next(services, review_switches, monkeypatch):
    """Its CPU, not its time, spaces full passes: a pass that waited half
    a second for the store and spent 10 ms of CPU puts the next one off by
    ``FULL_PASS_SHARE`` times 10 ms (or the tick), not by two seconds. The
    CPU clock is a stand-in that only the tick's work advances, so that a
    loaded machine cannot change what is measured."""
    with watching(services) as ctx:
        reconciler = Reconciler(ctx)
        spent = [0.0]
        reconciler.cpu_clock = lambda: spent[0]
        reads = ctx.runtime.states

        def slow_states(*args, **kw):
            time.sleep(0.5)  # as if queued behind another transaction
            spent[0] += 0.01  # and what reading cost
            return reads(*args, **kw)

        reconciler.tick()  # the first tick sees the datacenter: its one-time work done
        monkeypatch.setattr(ctx.runtime, "states", slow_states)
        reconciler._next_full = 0.0  # the next tick is a full pass
        began = time.monotonic()
        reconciler.tick()
        ended = time.monotonic()
        assert ended - began >= 0.5
        timing = ctx.timing
        assert reconciler._full_every == max(timing.tick, FULL_PASS_SHARE * 0.01, ctx.pace.interval / FULL_PASSES_PER_BEAT)
        # due from the pass's start: already due when it ends, half a second later
        assert reconciler._next_full < ended
    reconciler.stop()


def test_a_new_datacenters_switches_are_read_before_its_first_start(services, review_switches):
    """The first tick that sees the switches builds their drivers and reads
    their cabled ports, so the first start's pass writes at once."""
    with watching(services) as ctx:
        reconciler = Reconciler(ctx)
        reconciler.tick()
        inv = ctx.inventory()
        cabled = {(n.switch, n.port) for h in inv.hosts for n in h.nics if n.switch}
        deadline = time.monotonic() + 10
        while not cabled <= set(ctx.ports.confirmed()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cabled <= set(ctx.ports.confirmed())
    reconciler.stop()


def test_silences_count_from_when_beats_can_arrive_not_from_the_controllers_start(services, review_switches):
    """A restarted controller whose agent service took long to come up
    heard no beat meanwhile: that says nothing of the personas. Silences
    count from when beats can reach it (``hear_beats_from_now``), so a
    healthy persona is not made suspect, and fenced, by a slow start."""
    from datetime import timedelta

    from voe.domain.lifecycle import Event, State
    from voe.store.time import now

    services.inventory.write(lambda inv: inv.model_copy(update={"personas": [
        p.model_copy(update={"desired": "running"}) if p.name == "lb" else p for p in inv.personas]}))
    rt = services.runtime
    rt.transition("lb", State.STOPPED, Event.START)
    rt.place([Placed("lb", "physical", "v20z", None, "00:0b:cd:04:00:01", "test")])
    rt.transition("lb", State.POWERING_ON, Event.POWERED)
    rt.transition("lb", State.BOOTING, Event.AGENT_READY)
    with watching(services) as ctx:
        for hearing in (False, True):
            reconciler = Reconciler(ctx)
            reconciler._grace_from = now() - timedelta(seconds=10)  # built long ago, its agent service slow
            if hearing:
                reconciler.hear_beats_from_now()
            reconciler.tick()
            state = rt.state_of("lb").state
            assert state == (State.RUNNING if hearing else State.SUSPECT)
            if state == State.SUSPECT:
                rt.transition("lb", State.SUSPECT, Event.HEARTBEAT_RESUMED)
