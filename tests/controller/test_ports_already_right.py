"""A start whose host's ports already carry what it needs does not queue
for its switch's passes; and none of the passes under way can leave its
ports wrong for it."""

from __future__ import annotations

import threading
import time

import pytest


@pytest.fixture
def held_writes(fabric, monkeypatch):
    """sw1's writes block until released: a pass under way, caught in the
    middle of its write."""
    inv, keeper, *_ = fabric
    driver = keeper.switch_driver(inv.by_name("switches")["sw1"])
    real = driver.configure_ports
    writing, release = threading.Event(), threading.Event()

    def held(todo):
        writing.set()
        assert release.wait(10)
        return real(todo)

    monkeypatch.setattr(driver, "configure_ports", held)
    yield writing, release
    release.set()


def in_thread(fn) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("heard", [True, False], ids=["switch-heard-lately", "switch-not-heard"])
def test_a_start_whose_ports_are_right_does_not_wait_for_another_hosts_pass(fabric, services, held_writes, heard):
    """...on a switch that answered its probes lately. One that did not may
    have died a moment ago, unknown yet: a fence's replacement that took its
    ports there as right booted through a dead switch, and sat booting
    until its boot timeout. Such a start waits for the passes on the
    switch, as every start did, and so learns that the switch fails."""
    inv, keeper, watch, state, _ = fabric
    writing, release = held_writes
    stop = threading.Event()
    if heard:
        watch.start(lambda: inv, stop)
        deadline = time.monotonic() + 10
        while not watch.answered_lately("sw1"):
            assert time.monotonic() < deadline, "sw1 never answered a probe"
            time.sleep(0.02)
    uplink = state["sw1"].view(1).tagged  # dl360-1's, carrying web-1's networks
    assert uplink
    # bea-1 starts on dl360-2: its trunk on sw1 is being written
    services.runtime.begin_incarnation("bea-1", "physical", "dl360-2", None, "00:0b:cd:02:00:01", "test")
    other = in_thread(lambda: keeper.reconcile(lambda: inv, ["dl360-2"]))
    assert writing.wait(10)
    # web-2 starts on dl360-1, whose uplink carries its networks already
    services.runtime.begin_incarnation("web-2", "vm", "dl360-1", "web-2", "02:56:4f:00:00:08", "test")
    mine = in_thread(lambda: keeper.reconcile(lambda: inv, ["dl360-1"]))
    mine.join(1.0)
    assert mine.is_alive() != heard, "waited for bea-1's pass" if heard else "took sw1's ports as right unheard"
    release.set()
    other.join(10)
    mine.join(10)
    stop.set()
    assert state["sw1"].view(1).tagged == uplink


def test_a_pass_planned_before_a_start_cannot_leave_its_ports_bare(fabric, services, held_writes):
    """web-1 stops on dl360-1 as web-2 starts there. The stop's pass
    planned the uplink bare (nothing ran there then) and is writing it when
    web-2's start looks: the switch still shows the VLANs web-2 needs, but
    they are about to go, so the start must wait and write them again."""
    inv, keeper, _, state, _ = fabric
    writing, release = held_writes
    uplink = state["sw1"].view(1).tagged
    services.runtime.end_incarnation("web-1", 1, "test: stopped")
    stop = in_thread(lambda: keeper.reconcile(lambda: inv, ["dl360-1"]))
    assert writing.wait(10)
    services.runtime.begin_incarnation("web-2", "vm", "dl360-1", "web-2", "02:56:4f:00:00:08", "test")
    start = in_thread(lambda: keeper.reconcile(lambda: inv, ["dl360-1"]))
    start.join(0.5)
    assert start.is_alive(), "web-2's start took ports about to be written bare as done"
    release.set()
    stop.join(10)
    start.join(10)
    assert state["sw1"].view(1).tagged == uplink


def test_a_failed_write_leaves_its_ports_unknown_so_the_next_pass_writes_them(fabric, services, monkeypatch):
    """A write that fails half way may have changed some ports: what the
    controller last confirmed there no longer says what they carry."""
    from voe.errors import DriverError

    inv, keeper, _, state, _ = fabric
    driver = keeper.switch_driver(inv.by_name("switches")["sw1"])
    real = driver.configure_ports

    def half(todo):
        real(todo)  # written, but the answer is lost
        raise DriverError("sw1", "configure ports", "refused", transient=False)

    monkeypatch.setattr(driver, "configure_ports", half)
    services.runtime.end_incarnation("web-1", 1, "test: stopped")
    with pytest.raises(DriverError):
        keeper.reconcile(lambda: inv, ["dl360-1"])
    assert not state["sw1"].view(1).tagged  # the stop's write went through
    monkeypatch.setattr(driver, "configure_ports", real)
    services.runtime.begin_incarnation("web-2", "vm", "dl360-1", "web-2", "02:56:4f:00:00:08", "test")
    keeper.reconcile(lambda: inv, ["dl360-1"])
    assert state["sw1"].view(1).tagged == {100, 200}
