"""The reconciler sees an operator's change at once, and a tick that only
waited (for the store's writer, behind an apply of a whole datacenter)
does not put off the next full pass: a new datacenter applied while a tick
waited went unseen for fourteen seconds, and its switches' drivers were
built by the first group start, on its critical path."""

from __future__ import annotations

import threading
import time

import pytest

from harness import load
from tests.controller.conftest import watching
from voe.controller.reconciler import FULL_PASS_SHARE, Reconciler
from voe.domain.inventory import parse


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
    """Its CPU, not its time, spaces full passes."""
    with watching(services) as ctx:
        reconciler = Reconciler(ctx)
        reads = ctx.runtime.states

        def slow_states(*args, **kw):
            time.sleep(0.5)  # as if queued behind another transaction
            return reads(*args, **kw)

        reconciler.tick()  # the first tick sees the datacenter: its one-time work done
        monkeypatch.setattr(ctx.runtime, "states", slow_states)
        reconciler._next_full = 0.0  # the next tick is a full pass
        began = time.monotonic()
        reconciler.tick()
        assert time.monotonic() - began >= 0.5
        assert reconciler._full_every < 0.5 * FULL_PASS_SHARE / 2
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
