"""A server a group start reserved has its ports configured ahead, for the
persona waiting to start there; the reservation gone, the ports carry
nothing again; what runs on a server always decides over a reservation."""

from __future__ import annotations

import time

from voe.controller import ports


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
    keeper.reserve(lambda: inv, {"dl360-2": "bea-1"})
    assert eventually(lambda: carries(state["sw1"], 2, 300, {200}))
    assert eventually(lambda: carries(state["sw2"], 2, None, set()))  # its other NIC carries nothing
    keeper.reserve(lambda: inv, {})  # the group stopped before bea-1 started, or it went elsewhere
    assert eventually(lambda: carries(state["sw1"], 2, None, set()))
    background_passes_done()


def test_what_runs_on_a_server_decides_its_ports_over_a_reservation(fabric, services):
    """Plans are hints: a server reserved by one group start may meanwhile
    run a persona placed there by another; its ports are that persona's."""
    inv, keeper, _, state, _ = fabric
    services.runtime.begin_incarnation("web-2", "physical", "dl360-2", None, "00:0b:cd:02:00:01", "test")
    keeper.reserve(lambda: inv, {"dl360-2": "bea-1"})
    keeper.reconcile(lambda: inv, ["dl360-2"])
    assert carries(state["sw1"], 2, 100, {200})  # web-2: front native, back tagged
    background_passes_done()  # the reservation's own pass changed nothing
    assert carries(state["sw1"], 2, 100, {200})


def background_passes_done() -> None:
    """The passes ``reserve`` queued have ended (one worker runs them in
    order), before the fixture closes the switches under them."""
    ports._AHEAD.submit(lambda: None).result()
