"""A server a group start reserved has its ports configured ahead, for the
persona waiting to start there; the reservation gone, the ports carry
nothing again; what runs on a server always decides over a reservation."""

from __future__ import annotations

import time

from voe.controller import reconciler


def eventually(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def carries(state, port: int, native: int | None, tagged: set[int]) -> bool:
    """The port's untagged (native) and tagged VLANs are exactly these."""
    view = state.view(port)
    return view.tagged == frozenset(tagged) and view.untagged == (frozenset({native}) if native else frozenset()) \
        and (native is None or view.pvid == native)


def test_a_reserved_server_carries_its_personas_vlans_before_it_starts_and_nothing_after_the_reservation_goes(fabric):
    inv, keeper, _, state, _ = fabric
    # dl360-2 is cabled to sw1 port 2 (its trunk) and sw2 port 2; bea-1
    # boots from storage (300, native) and has back (200) tagged
    assert carries(state["sw1"], 2, 1, set())  # as the switch came: the default VLAN only
    keeper.reserve(lambda: inv, {"dl360-2": (("bea-1", "physical"),)})
    assert eventually(lambda: carries(state["sw1"], 2, 300, {200}))
    assert eventually(lambda: carries(state["sw2"], 2, None, set()))  # its other NIC carries nothing
    keeper.reserve(lambda: inv, {})  # the group stopped before bea-1 started, or it went elsewhere
    assert eventually(lambda: carries(state["sw1"], 2, None, set()))
    background_passes_done(keeper)


def test_what_runs_on_a_server_decides_its_ports_over_a_reservation(fabric, services):
    """Plans are hints: a server reserved by one group start may meanwhile
    run a persona placed there by another; its ports are that persona's."""
    inv, keeper, _, state, _ = fabric
    services.runtime.begin_incarnation("web-2", "physical", "dl360-2", None, "00:0b:cd:02:00:01", "test")
    keeper.reserve(lambda: inv, {"dl360-2": (("bea-1", "physical"),)})
    keeper.reconcile(lambda: inv, ["dl360-2"])
    assert carries(state["sw1"], 2, 100, {200})  # web-2: front native, back tagged
    background_passes_done(keeper)  # the reservation's own pass changed nothing
    assert carries(state["sw1"], 2, 100, {200})


def background_passes_done(keeper) -> None:
    """The passes ``reserve`` queued have ended (one worker runs them in
    order), before the fixture closes the switches under them."""
    keeper.workers.ports_ahead.submit(lambda: None).result()


def test_a_hypervisor_hosts_uplink_carries_its_reserved_vms_networks_ahead(fabric, services):
    """VMs a group start reserved on a hypervisor host with nothing running:
    its uplink carries their networks before the first of them starts (a
    level's VMs packed on a fresh host would otherwise all wait for the
    first one's write), and nothing once the reservation goes."""
    inv, keeper, _, state, _ = fabric
    services.runtime.end_incarnation("web-1", 1, "test: stopped")
    keeper.reconcile(lambda: inv, ["dl360-1"])
    assert carries(state["sw1"], 1, None, set())  # dl360-1's uplink, bare
    keeper.reserve(lambda: inv, {"dl360-1": (("web-2", "vm"), ("web-3", "vm"))})
    assert eventually(lambda: carries(state["sw1"], 1, None, {100, 200}))
    keeper.reserve(lambda: inv, {})
    assert eventually(lambda: carries(state["sw1"], 1, None, set()))
    background_passes_done(keeper)


def test_a_group_starts_reservations_are_each_servers_one_persona_and_each_hypervisor_hosts_vms(
        services, review_switches, monkeypatch):
    """What the reconciler hands the ports as reserved, from the plans of
    the personas still waiting or being placed: a server planned for two
    personas (two group starts; plans are hints) is reserved for neither,
    a hypervisor host for every VM planned there, and a persona already
    running reserves nothing."""
    from tests.controller.conftest import watching
    from voe.controller.reconciler import Reconciler
    from voe.domain.lifecycle import State
    from voe.store.runtime import PersonaState
    from voe.store.time import now

    def waiting(persona, kind, host, state=State.WAITING):
        return PersonaState(persona, state, 0, now(), None, {"kind": kind, "host": host})

    states = {s.persona: s for s in [
        waiting("bea-1", "physical", "dl360-2"), waiting("oracle", "physical", "dl360-2"),
        waiting("bea-2", "physical", "dl360-3", State.PLACING),
        waiting("web-2", "vm", "dl360-1"), waiting("web-3", "vm", "dl360-1"),
        waiting("lb", "vm", "dl360-1", State.RUNNING)]}
    monkeypatch.setattr(reconciler, "PREPARE_DEFERS", 0.0)  # bea-2 is being placed: no lull to wait for here
    with watching(services) as ctx:
        reserved = {}
        monkeypatch.setattr(ctx.ports, "reserve", lambda _load, r: reserved.update(r))
        Reconciler(ctx)._prepare(ctx.inventory(), states)
    assert reserved == {"dl360-3": (("bea-2", "physical"),), "dl360-1": (("web-2", "vm"), ("web-3", "vm"))}


def test_nothing_is_prepared_while_personas_start_until_a_lull_or_a_bound(services, review_switches, monkeypatch):
    """Starts come first: the ports and BMC sessions of servers whose
    personas wait are prepared when no persona is being placed or powered
    on, or once starts have gone on for ``PREPARE_DEFERS``."""
    from tests.controller.conftest import watching
    from voe.controller.reconciler import Reconciler
    from voe.domain.lifecycle import State
    from voe.store.runtime import PersonaState
    from voe.store.time import now

    def planned(persona, host, state):
        return PersonaState(persona, state, 0, now(), None, {"kind": "physical", "host": host})

    monkeypatch.setattr(reconciler, "PREPARE_DEFERS", 0.3)
    starting = {"bea-1": planned("bea-1", "dl360-2", State.WAITING),
                "oracle": planned("oracle", "pe2800", State.POWERING_ON)}
    with watching(services) as ctx:
        reserved = {}
        monkeypatch.setattr(ctx.ports, "reserve", lambda _load, r: reserved.update(r))
        r = Reconciler(ctx)
        r._prepare(ctx.inventory(), starting)
        assert reserved == {}
        time.sleep(0.35)
        r._prepare(ctx.inventory(), starting)  # starts for longer than the bound: prepared all the same
        assert reserved == {"dl360-2": (("bea-1", "physical"),)}
        reserved.clear()
        lull = {"bea-1": starting["bea-1"], "oracle": planned("oracle", "pe2800", State.BOOTING)}
        Reconciler(ctx)._prepare(ctx.inventory(), lull)  # nothing starting: at once
        assert reserved == {"dl360-2": (("bea-1", "physical"),)}
