"""The state of one emulated managed switch, held as a real 802.1Q switch
holds it (RFC 4363 Q-BRIDGE-MIB): a static VLAN table with egress and
untagged port sets, a PVID per port, and IF-MIB admin/oper status.

Factory default, as on real switches: VLAN 1 exists, every port is an
untagged member with PVID 1. Thread-safe: the SNMP agent writes while the
lab's data plane and truth checker read. A writer applies one request's
writes inside ``change()``; the switch's forwarding plane (``watch``) is
programmed before it returns, as a switch programs its hardware before it
answers the request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# RowStatus values, RFC 2579 (SNMPv2-TC)
ACTIVE, NOT_IN_SERVICE, NOT_READY, CREATE_AND_GO, CREATE_AND_WAIT, DESTROY = 1, 2, 3, 4, 5, 6


@dataclass
class Vlan:
    name: str
    egress: set[int] = field(default_factory=set)
    untagged: set[int] = field(default_factory=set)
    status: int = ACTIVE


@dataclass
class PortView:
    """One port as the data plane sees it."""

    number: int
    admin_up: bool
    oper_up: bool
    pvid: int
    tagged: frozenset[int]
    untagged: frozenset[int]


class SwitchState:
    def __init__(self, name: str, ports: list[str], cabled: set[str] | None = None):
        self.name = name
        self.port_names = list(ports)  # bridge port n is port_names[n - 1]
        self.cabled = set(cabled if cabled is not None else ports)
        self.lock = threading.RLock()
        n = len(self.port_names)
        self.admin_up = {p: True for p in range(1, n + 1)}
        self.pvid = {p: 1 for p in range(1, n + 1)}
        self.vlans: dict[int, Vlan] = {1: Vlan("default", set(range(1, n + 1)), set(range(1, n + 1)))}
        self.down = False  # the whole switch (power or crash)
        self._watchers: list[Callable[[SwitchState], None]] = []

    @property
    def port_count(self) -> int:
        return len(self.port_names)

    def number_of(self, port_name: str) -> int:
        return self.port_names.index(port_name) + 1

    def oper_up(self, port: int) -> bool:
        return not self.down and self.admin_up[port] and self.port_names[port - 1] in self.cabled

    def view(self, port: int) -> PortView:
        with self.lock:
            active = {v: vl for v, vl in self.vlans.items() if vl.status == ACTIVE}
            untagged = frozenset(v for v, vl in active.items() if port in vl.untagged and port in vl.egress)
            tagged = frozenset(v for v, vl in active.items() if port in vl.egress and port not in vl.untagged)
            return PortView(port, self.admin_up[port], self.oper_up(port), self.pvid[port], tagged, untagged)

    # --- writes, with a real switch's side effects ----------------------------

    def watch(self, fn: Callable[[SwitchState], None]) -> None:
        """``fn(state)`` after every change, on the writer's thread."""
        self._watchers.append(fn)

    @contextmanager
    def change(self) -> Iterator[SwitchState]:
        """Writes applied as one: the watchers see their result once, even
        when a write in between fails."""
        with self.lock:
            try:
                yield self
            finally:
                for fn in self._watchers:
                    fn(self)

    def set_down(self, down: bool) -> None:
        with self.change():
            self.down = down

    def set_egress(self, vlan: int, ports: set[int]) -> None:
        with self.lock:
            vl = self.vlans[vlan]
            vl.egress = {p for p in ports if 1 <= p <= self.port_count}
            vl.untagged &= vl.egress

    def set_untagged(self, vlan: int, ports: set[int]) -> None:
        """A port untagged in a VLAN takes it as PVID and leaves untagged
        membership of every other VLAN (a frame has one native VLAN)."""
        with self.lock:
            vl = self.vlans[vlan]
            ports = {p for p in ports if 1 <= p <= self.port_count}
            vl.untagged = ports
            vl.egress |= ports
            for p in ports:
                self.pvid[p] = vlan
                for other, ovl in self.vlans.items():
                    if other != vlan:
                        ovl.untagged.discard(p)
                        if other == 1:
                            ovl.egress.discard(p)

    def set_pvid(self, port: int, vlan: int) -> None:
        with self.lock:
            if vlan not in self.vlans:
                raise ValueError(f"VLAN {vlan} does not exist")
            self.pvid[port] = vlan

    def set_row_status(self, vlan: int, status: int) -> None:
        with self.lock:
            if status in (CREATE_AND_GO, CREATE_AND_WAIT):
                if vlan in self.vlans:
                    raise ValueError(f"VLAN {vlan} exists")
                self.vlans[vlan] = Vlan(f"VLAN{vlan:04d}", status=ACTIVE if status == CREATE_AND_GO else NOT_IN_SERVICE)
            elif status == DESTROY:
                if vlan == 1:
                    raise ValueError("the default VLAN cannot be destroyed")
                self.vlans.pop(vlan, None)
                for p, v in self.pvid.items():
                    if v == vlan:
                        self.pvid[p] = 1
            elif status in (ACTIVE, NOT_IN_SERVICE):
                if vlan not in self.vlans:
                    raise ValueError(f"VLAN {vlan} does not exist")
                self.vlans[vlan].status = status
            else:
                raise ValueError(f"RowStatus {status} cannot be set")

    def set_admin(self, port: int, up: bool) -> None:
        with self.lock:
            self.admin_up[port] = up

    def set_name(self, vlan: int, name: str) -> None:
        with self.lock:
            self.vlans[vlan].name = name
