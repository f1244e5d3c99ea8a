"""A fabric fence and the port passes that follow what runs where share
the switches: the fence's shut ports must stay shut, and a fence that
still has another level to try must not wait out a switch known silent."""

from __future__ import annotations

import time

import pytest

from voe.controller.device_watch import DeviceWatch
from voe.controller.fabric_fence import FabricFence, GaveWay
from voe.controller.ports import PortKeeper
from voe.controller.timing import Timing
from voe.controller.workers import Workers
from voe.drivers.switch.snmp import SnmpSwitch
from voe.errors import DriverError


def watched_keeper(inv, services, interval: float, driver_timeout: float):
    """A fresh controller's view of the fabric: a switch watch (not yet
    running) whose probes wait 0.5 s, and a port keeper whose drivers wait
    ``driver_timeout``."""
    def driver(sw, timeout):
        return SnmpSwitch.from_switch(sw.model_copy(update={"settings": {**sw.settings, "timeout": timeout}}))
    probes = {sw.name: driver(sw, 0.5) for sw in inv.switches}
    workers = Workers(Timing())
    watch = DeviceWatch("switch", lambda i: i.by_name("switches"), lambda sw: probes[sw.name],
                        lambda *a, **k: None, interval, workers.probes, shunned="new trunks", probe_timeout=0.5)
    drivers = {sw.name: driver(sw, driver_timeout) for sw in inv.switches}
    keeper = PortKeeper(services.runtime, lambda sw: drivers[sw.name], lambda *a, **k: None, watch, workers)
    return probes, watch, drivers, keeper


def test_a_port_pass_between_the_shut_and_its_record_keeps_the_ports_down(fabric, services):
    inv, keeper, _, state, _ = fabric
    host = inv.by_name("hosts")["dl360-1"]
    assert state["sw1"].admin_up[1] and state["sw2"].admin_up[1]  # web-1's uplink, before the fence

    def record(ports: list[str]) -> None:
        # another VM of the host starting or stopping meanwhile: its pass
        # plans from the store, where the fence is not recorded yet
        keeper.reconcile(lambda: inv, ["dl360-1"])
        services.runtime.fence_host("dl360-1", f"fabric: ports {', '.join(ports)} shut")

    assert FabricFence(keeper).shut(inv, host, patient=False, record=record) == ["sw1:1", "sw2:1"]
    assert not state["sw1"].admin_up[1] and not state["sw2"].admin_up[1]
    keeper.reconcile(lambda: inv, ["dl360-1"])  # and after the record, from the store
    assert not state["sw1"].admin_up[1] and not state["sw2"].admin_up[1]


def test_two_fences_of_one_host_each_keep_its_ports_down_until_recorded(fabric, services):
    """Two VMs of one hypervisor host fenced at the fabric at once: the one
    that finishes first (here without recording, as a failed level would)
    must not lift the other's protection."""
    inv, keeper, _, state, _ = fabric
    host = inv.by_name("hosts")["dl360-1"]

    def outer_record(ports: list[str]) -> None:
        with pytest.raises(RuntimeError):
            FabricFence(keeper).shut(inv, host, patient=True, record=lambda p: (_ for _ in ()).throw(RuntimeError("no record")))
        keeper.reconcile(lambda: inv, ["dl360-1"])  # a pass while the outer fence is still unrecorded
        services.runtime.fence_host("dl360-1", f"fabric: ports {', '.join(ports)} shut")

    FabricFence(keeper).shut(inv, host, patient=True, record=outer_record)
    assert not state["sw1"].admin_up[1] and not state["sw2"].admin_up[1]


def test_a_fence_with_another_level_left_does_not_wait_for_a_silent_switch(fabric, services):
    inv, keeper, watch, state, _ = fabric
    host = inv.by_name("hosts")["dl360-1"]
    watch.mark_down("sw2", "missed two probes")
    recorded = []
    with pytest.raises(GaveWay) as e:  # the fence tries its next level, then this one patiently
        FabricFence(keeper).shut(inv, host, patient=False, record=recorded.append)
    assert e.value.device == "sw2" and "does not answer" in str(e.value)
    assert recorded == [] and "dl360-1" not in services.runtime.fenced_hosts()
    # the last level left is tried all the same (this switch does answer)
    assert FabricFence(keeper).shut(inv, host, patient=True, record=recorded.append) == ["sw1:1", "sw2:1"]
    assert recorded == [["sw1:1", "sw2:1"]] and not state["sw2"].admin_up[1]


def oracles_start_fails_on_the_verdict_for_sw1(services, keeper, inv) -> None:
    """oracle begins on dl360-2, whose trunk is on sw1: its ports pass
    fails with the watch's verdict on sw1, not with an SNMP timeout."""
    services.runtime.begin_incarnation("oracle", "physical", "dl360-2", None, "00:0b:cd:02:00:01", "test")
    with pytest.raises(DriverError) as e:
        keeper.reconcile(lambda: inv, ["dl360-2"])
    assert e.value.device == "sw1" and "the switch does not answer" in str(e.value)


def test_a_controller_just_started_asks_its_watch_before_writing_to_a_switch_that_died(fabric, services):
    """sw1 died under the previous controller: the new one's first probe
    says so, and a start needing VLANs there fails on that verdict (to be
    placed again elsewhere) instead of on SNMP timeouts of its own."""
    import threading

    inv, _, _, _, emulators = fabric
    probes, watch, drivers, keeper = watched_keeper(inv, services, interval=0.5, driver_timeout=3)
    emulators["sw1"].set_down(True)
    stop = threading.Event()
    threading.Thread(target=watch.run, args=(lambda: inv, stop), daemon=True).start()
    try:
        oracles_start_fails_on_the_verdict_for_sw1(services, keeper, inv)
    finally:
        stop.set()
        watch.await_verdicts(probes)  # the probe of sw1 is still waiting for its answer: let it end first
        for d in list(probes.values()) + list(drivers.values()):
            d.close()


def test_a_start_whose_switch_dies_under_its_pass_fails_on_the_probe_not_on_its_own_snmp_timeouts(fabric, services):
    """sw1 answered, then died just as a start wrote its ports: the start
    fails as soon as the watch's probe misses (to be placed again), while
    the pass's own read waits out its SNMP timeout in the background."""
    import threading

    inv, _, _, _, emulators = fabric
    probes, watch, drivers, keeper = watched_keeper(inv, services, interval=0.2, driver_timeout=5)
    stop = threading.Event()
    watch.start(lambda: inv, stop)
    try:
        watch.await_verdicts(probes)
        assert not watch.avoid()  # both answered
        emulators["sw1"].set_down(True)
        oracles_start_fails_on_the_verdict_for_sw1(services, keeper, inv)
    finally:
        stop.set()
        emulators["sw1"].set_down(False)
        time.sleep(1.0)  # the pass's read and the last probe end before their sessions close
        for d in list(probes.values()) + list(drivers.values()):
            d.close()
