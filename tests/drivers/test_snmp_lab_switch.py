"""The SNMP driver against the lab's switch agent over real UDP: a batch of
ports written in one pass and read back, on a switch with more VLANs than
one GETBULK answers (the table is walked in several rounds, both columns
side by side)."""

from __future__ import annotations

import socket

import pytest

from harness import free_port
from voe.domain.models import Switch
from voe.domain.ports import PortConfig
from voe.drivers.switch.snmp import SnmpSwitch
from voe.lab.switch_emulator import SwitchEmulator


@pytest.fixture
def switch():
    port = free_port(socket.SOCK_DGRAM)
    model = Switch(name="sw9", address="127.0.0.1", ports=48, settings={"port": port, "timeout": 3})
    emulator = SwitchEmulator(model, "127.0.0.1", port)
    emulator.start()
    driver = SnmpSwitch.from_switch(model)
    yield driver, emulator.state
    driver.close()
    emulator.stop()


def test_a_batch_of_ports_is_written_in_one_pass_and_read_back_across_many_vlans(switch):
    driver, state = switch
    many = frozenset(range(1000, 1120))  # 120 VLANs: a column walk needs three GETBULKs of 50
    wanted = {
        "1": PortConfig("trunk", None, many),
        "2": PortConfig("trunk", 300, frozenset({200})),
        "3": PortConfig.access(200),
        "4": PortConfig("trunk", None, frozenset(), admin_up=False),
    }
    driver.configure_ports(wanted)  # raises unless the read-back confirms every port
    seen = driver.read_ports(list(wanted))
    assert seen["1"].tagged == many and seen["1"].native_vlan is None
    assert (seen["2"].native_vlan, seen["2"].tagged) == (300, frozenset({200}))
    assert (seen["3"].native_vlan, seen["3"].tagged) == (200, frozenset())
    assert seen["4"].admin_up is False and seen["4"].vlans() == frozenset()
    # the agent's own tables, not the driver's reading of them
    assert state.view(1).tagged == many
    assert state.pvid[2] == 300 and state.admin_up[4] is False

    driver.configure_ports({"1": PortConfig("trunk", None, frozenset({1000}))})
    assert driver.read_ports(["1"])["1"].tagged == {1000}
    assert state.view(1).tagged == {1000}


def test_a_walk_asks_for_the_rows_the_table_had_and_still_reads_rows_added_since(switch, monkeypatch):
    """Fifty rows a column for a table of three was most of what a port
    write cost: a walk asks for one row more than the last one found, and a
    table that grew meanwhile is read to its end all the same."""
    from voe.drivers.switch import snmp

    driver, _ = switch
    asked: list[int] = []
    bulk = snmp.bulk_cmd

    async def counting(engine, auth, target, context, non_repeaters, repetitions, *types):
        asked.append(repetitions)
        return await bulk(engine, auth, target, context, non_repeaters, repetitions, *types)

    monkeypatch.setattr(snmp, "bulk_cmd", counting)
    driver.configure_ports({"5": PortConfig("trunk", 100, frozenset({200}))})
    vlans = set(driver.walk(snmp.ROW_STATUS))
    asked.clear()
    assert set(driver.walk(snmp.ROW_STATUS)) == vlans
    assert asked == [len(vlans) + 1]
    many = frozenset(range(2000, 2060))  # the table grows by sixty rows: several rounds
    driver.configure_ports({"6": PortConfig("trunk", None, many)})
    assert set(driver.walk(snmp.ROW_STATUS)) == vlans | many


def test_closing_a_driver_while_another_thread_waits_on_its_switch_does_not_fail():
    """A deposed leader closes its drivers while its port writers may still
    be waiting on a switch: the close waits for that request (within its
    timeout) instead of failing, and a later call says the driver is closed.
    A close that raised here once left a controller that never led again."""
    import threading

    from voe.errors import DriverError

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    silent.bind(("127.0.0.1", 0))
    model = Switch(name="sw8", address="127.0.0.1", ports=8,
                   settings={"port": silent.getsockname()[1], "timeout": 1, "retries": 0})
    driver = SnmpSwitch.from_switch(model)
    failed: list[BaseException] = []

    def read():
        try:
            driver.read_ports(["1"])
        except DriverError as e:
            failed.append(e)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        import time
        time.sleep(0.3)  # the read is under way on the driver's loop
        driver.close()  # raised "Cannot close a running event loop"
        reader.join(5)
        assert failed, "the read of a silent switch ended in a timeout"
        with pytest.raises(DriverError, match="closed"):
            driver.read_ports(["1"])
    finally:
        silent.close()
