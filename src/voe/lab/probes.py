"""Reach between two personas on real machines, shown by packets: the
first persona's network probe (``voe.agent.probe``, over its machine's
virtio-serial port, a physical server's or a VM's) sends a UDP datagram
to every IPv4 address of the second, which then says what arrived and on
which of its interfaces. What the switches forward decides the answer,
not any table."""

from __future__ import annotations

import ipaddress
import time
import uuid

from voe.lab.kvm import KvmError, KvmMachine
from voe.lab.libvirt_host import LibvirtVm

ARRIVAL_PATIENCE = 3.0  # seconds for a probe to arrive: an ARP exchange first, guests under emulation
SENDS = 2  # each probe is sent twice: the first may wait on ARP


def reach(sender: KvmMachine | LibvirtVm, receiver: KvmMachine | LibvirtVm, a: str, b: str) -> tuple[bool, str]:
    try:
        targets = {address.split("/")[0]: iface for iface in receiver.probe({"op": "interfaces"})["interfaces"]
                   for address in iface["addresses"]}
        if not targets:
            return False, f"{b} has no IPv4 address"
        sent = {f"{a}->{b} {address} {uuid.uuid4().hex[:8]}": address for address in targets}  # token -> address
        for _ in range(SENDS):
            for token, address in list(sent.items()):
                if "error" in sender.probe({"op": "send", "to": address, "token": token}):
                    del sent[token]  # no route from a: nothing left
        arrived: dict[str, str] = {}  # address -> the interface it arrived on
        deadline = time.monotonic() + ARRIVAL_PATIENCE
        while len(arrived) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.3)
            for heard in receiver.probe({"op": "heard"})["heard"]:
                if heard["token"] in sent:
                    arrived[sent[heard["token"]]] = heard["interface"]
    except (KvmError, KeyError) as e:
        return False, f"the probes could not be run: {e}"
    by_name = {iface["name"]: iface for iface in targets.values()}
    said = []
    for address in sorted(targets, key=ipaddress.ip_address):
        vlan = _vlan(targets[address])
        if address in arrived:
            on = arrived[address]
            said.append(f"{address} arrived on {on} ({_vlan(by_name[on]) if on in by_name else '?'})")
        elif address not in sent.values():
            said.append(f"{address} ({vlan}): {a} has no route to it")
        else:
            said.append(f"{address} ({vlan}): lost")
    return bool(arrived), f"probes from {a} to {b} by packets: " + "; ".join(said)


def _vlan(iface: dict) -> str:
    return f"VLAN {iface['vlan']}" if iface["vlan"] else "untagged"
