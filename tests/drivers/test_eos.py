"""The Arista EOS driver: the exact configuration commands it sends, the
EOS JSON it parses, and the whole write-then-verify flow against a fake
session that applies EOS commands to a model of the switch (no EOS switch
is reachable here; the JSON shapes follow Arista's `| json` output)."""

from __future__ import annotations

import json

import pytest

from voe.domain.ports import PortConfig
from voe.drivers.switch.eos import EosSettings, EosSwitch, parse_switchport, parse_vlan_list, port_commands, vlan_list
from voe.errors import DriverError


def test_access_port_commands():
    assert port_commands("Ethernet3", PortConfig.access(300), {1, 300}) == [
        "interface Ethernet3", "switchport mode access", "switchport access vlan 300", "no shutdown"]


def test_trunk_with_native_vlan_creates_missing_vlans_and_allows_the_native():
    assert port_commands("Ethernet1", PortConfig.trunk({100, 200, 201}, native_vlan=300), {1, 100}) == [
        "vlan 200", "vlan 201", "vlan 300", "interface Ethernet1", "switchport mode trunk",
        "switchport trunk native vlan 300", "switchport trunk allowed vlan 100,200-201,300", "no shutdown"]


def test_trunk_without_native_vlan_and_shut():
    assert port_commands("Ethernet2", PortConfig.trunk(set(), admin_up=False), {1}) == [
        "interface Ethernet2", "switchport mode trunk", "switchport trunk native vlan 1",
        "switchport trunk allowed vlan none", "shutdown"]


def test_vlan_lists_round_trip():
    assert vlan_list({5, 6, 7, 9}) == "5-7,9"
    assert parse_vlan_list("5-7,9") == {5, 6, 7, 9}
    assert parse_vlan_list("NONE") == set() and len(parse_vlan_list("ALL")) == 4094


SWITCHPORT = {"switchports": {"Ethernet1": {"enabled": True, "switchportInfo": {
    "mode": "trunk", "accessVlanId": 1, "trunkingNativeVlanId": 300, "trunkAllowedVlans": "100,200,300",
    "macLearning": True, "tpid": "0x8100"}}}}
STATUS = {"interfaceStatuses": {"Ethernet1": {"linkStatus": "connected", "vlanInformation": {"vlanExplanation": "in Po1"},
                                              "bandwidth": 10000000000, "interfaceType": "10GBASE-T"}}}


def test_parse_trunk_reads_native_and_tagged_apart():
    assert parse_switchport(SWITCHPORT, STATUS, "Ethernet1") == PortConfig.trunk({100, 200}, native_vlan=300)


def test_parse_native_outside_allowed_is_no_native_and_disabled_is_down():
    sp = json.loads(json.dumps(SWITCHPORT))
    sp["switchports"]["Ethernet1"]["switchportInfo"].update(trunkingNativeVlanId=1, trunkAllowedVlans="100")
    st = {"interfaceStatuses": {"Ethernet1": {"linkStatus": "disabled"}}}
    assert parse_switchport(sp, st, "Ethernet1") == PortConfig.trunk({100}, None, admin_up=False)


class FakeEos:
    """Applies EOS configuration commands to a model and answers the show
    commands the driver uses in EOS's JSON shapes."""

    def __init__(self, refuse: str | None = None):
        self.vlans = {1}
        self.ports: dict[str, dict] = {}
        self.sent: list[list[str]] = []
        self.refuse = refuse

    def _port(self, name):
        return self.ports.setdefault(name, {"mode": "access", "access": 1, "native": 1, "allowed": "ALL", "up": True})

    def send_config_set(self, commands):
        self.sent.append(list(commands))
        port = None
        for c in commands:
            if self.refuse and c.startswith(self.refuse):
                return f"{c}\n% Invalid input (at token 1: '{c.split()[-1]}')"
            words = c.split()
            if words[0] == "vlan":
                self.vlans.add(int(words[1]))
            elif words[0] == "interface":
                port = self._port(words[1])
            elif c.startswith("switchport mode"):
                port["mode"] = words[-1]
            elif c.startswith("switchport access vlan"):
                port["access"] = int(words[-1])
            elif c.startswith("switchport trunk native vlan"):
                port["native"] = int(words[-1])
            elif c.startswith("switchport trunk allowed vlan"):
                port["allowed"] = words[-1].upper()
            elif c in ("shutdown", "no shutdown"):
                port["up"] = c == "no shutdown"
        return "\n".join(commands)

    def send_command(self, command):
        assert command.endswith(" | json")
        words = command.removesuffix(" | json").split()
        if words[:2] == ["show", "vlan"]:
            return json.dumps({"vlans": {str(v): {"name": f"VLAN{v:04d}", "status": "active"} for v in self.vlans}})
        if words[:2] == ["show", "version"]:
            return json.dumps({"modelName": "DCS-7050TX-64", "version": "4.28.3M"})
        name, what = words[2], words[3]
        p = self._port(name)
        if what == "switchport":
            return json.dumps({"switchports": {name: {"enabled": True, "switchportInfo": {
                "mode": p["mode"], "accessVlanId": p["access"], "trunkingNativeVlanId": p["native"],
                "trunkAllowedVlans": p["allowed"]}}}})
        return json.dumps({"interfaceStatuses": {name: {"linkStatus": "connected" if p["up"] else "disabled"}}})

    def disconnect(self):
        pass


def driver(fake: FakeEos) -> EosSwitch:
    return EosSwitch("leaf1", EosSettings(address="192.0.2.10", timeout=1), connect=lambda: fake)


def test_configure_ports_is_one_session_then_verified():
    fake = FakeEos()
    sw = driver(fake)
    sw.configure_ports({"1": PortConfig.trunk({100, 200}, native_vlan=300), "2": PortConfig.access(200)})
    assert len(fake.sent) == 1  # one configuration session for the batch
    assert fake.sent[0][:3] == ["vlan 100", "vlan 200", "vlan 300"]  # each VLAN created once
    assert sw.read_port("1") == PortConfig.trunk({100, 200}, native_vlan=300)
    assert sw.read_port("2") == PortConfig.access(200)
    sw.set_admin("1", False)
    assert not sw.read_port("1").admin_up
    assert sw.vlans() == {1, 100, 200, 300}
    assert sw.check() == "EOS 4.28.3M on DCS-7050TX-64"


def test_a_refused_command_is_a_driver_error_naming_the_switch():
    sw = driver(FakeEos(refuse="switchport trunk allowed"))
    with pytest.raises(DriverError) as e:
        sw.configure_ports({"1": PortConfig.trunk({100})})
    assert e.value.device == "leaf1" and "Invalid input" in e.value.cause


def test_an_unreachable_switch_is_a_typed_error():
    sw = EosSwitch("leaf1", EosSettings(address="127.0.0.1", port=1, timeout=1, retries=0))
    with pytest.raises(DriverError) as e:
        sw.read_port("1")
    assert e.value.device == "leaf1" and e.value.operation == "read port 1"
