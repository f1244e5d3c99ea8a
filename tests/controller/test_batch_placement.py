"""Personas placed in one batch never share a physical server: a server
boots one script, so the second persona would sit booting nothing until its
boot timeout (a fault campaign saw two personas fenced together each given
the same spare server, and one was down for 91 s). The placement keeps
every choice of a batch on one set of books, and the store refuses a
physical server another persona's live incarnation holds."""

from __future__ import annotations

import pytest

from tests.controller.conftest import watching
from voe.controller import start
from voe.controller.decide import RETARGET
from voe.domain.lifecycle import Event, State
from voe.store.runtime import Placed, ServerTaken


@pytest.fixture
def ctx(services, review_switches):
    with watching(services) as ctx:
        yield ctx


def test_two_personas_retargeted_in_one_batch_get_two_servers(ctx):
    """oracle and bea-1 fenced together, each to be placed away from the
    hosts where something just failed: one server fits that wish, and only
    one of them may have it."""
    for name in ("oracle", "bea-1"):
        ctx.runtime.transition(name, State.STOPPED, Event.START)
        ctx.runtime.set_intent(name, move_kind=RETARGET, move_host=None)
    for host in ("dl360-2", "dl360-3"):
        ctx.failed_hosts.mark(host)
    start.place(ctx, ctx.inventory().by_name("personas")["oracle"])
    held = {i.persona: i.host for i in ctx.runtime.live()}
    assert set(held) == {"oracle", "bea-1"}
    assert held["oracle"] != held["bea-1"], held
    assert "pe2800" in held.values()  # one of them still got the host nothing failed on


def test_the_store_refuses_a_server_another_persona_holds(ctx):
    for name in ("oracle", "bea-1"):
        ctx.runtime.transition(name, State.STOPPED, Event.START)
    first = ctx.runtime.place([Placed("oracle", "physical", "pe2800", None, "00:11:43:05:00:01", "test")])
    assert first["oracle"] == 1
    second = ctx.runtime.place([Placed("bea-1", "physical", "pe2800", None, "00:11:43:05:00:01", "test")])
    assert isinstance(second["bea-1"], ServerTaken) and "oracle holds" in str(second["bea-1"])
    assert ctx.runtime.state_of("bea-1").state == State.PLACING  # placed again at its next step
    assert [i.persona for i in ctx.runtime.live()] == ["oracle"]


def test_a_retarget_that_found_nothing_prefers_a_host_never_fenced_over_its_fenced_one(ctx, monkeypatch):
    """A controller just restarted may doubt every switch for a moment:
    nothing fits, and the retarget falls back to a fresh view that admits
    the servers a fence powered off. In that view a server never fenced
    comes first; oracle's own fenced server only when nothing else fits."""
    ctx.runtime.transition("oracle", State.STOPPED, Event.START)
    gen = ctx.runtime.begin_incarnation("oracle", "physical", "dl360-2", None, "00:0b:cd:02:00:01", "test")
    ctx.runtime.end_incarnation("oracle", gen, "BMC of dl360-2 reads off after hard power-off")
    ctx.runtime.fence_host("dl360-2", "bmc: powered off to fence oracle")
    ctx.runtime.set_intent("oracle", move_kind=RETARGET, move_host=None)
    fresh = start.machines_now

    def in_doubt_at_first(ctx, last_resort=False, also=()):
        inv, machines = fresh(ctx, last_resort, also)
        return (inv, machines) if last_resort else (inv, [])  # every switch in doubt: nothing fits

    monkeypatch.setattr(start, "machines_now", in_doubt_at_first)
    start.place(ctx, ctx.inventory().by_name("personas")["oracle"])
    placed = ctx.runtime.current("oracle")
    assert placed.generation == gen + 1
    assert placed.host in ("dl360-3", "pe2800"), placed
    assert "earlier fence" not in placed.why
