"""Whether two personas can reach each other, decided by the switches'
actual port and VLAN state (as set over SNMP), never by voe's database.

An attachment is one interface of a persona on one switch port: the VLAN
its frames carry (None: untagged) and its addresses. A reaches B when some
pair of attachments sits on the same switch, both ports are up, both land
in the same VLAN, and share a subnet. Switches are separate L2 domains here
(no inter-switch links are modelled).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from voe.lab.switch_state import SwitchState


@dataclass(frozen=True)
class Attachment:
    switch: str
    port: int
    vlan: int | None
    addresses: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...]


def landing_vlan(state: SwitchState, a: Attachment) -> tuple[int | None, str]:
    """The VLAN an attachment's frames are switched in, or None and why not."""
    if state.down:
        return None, f"{state.name} is down"
    view = state.view(a.port)
    where = f"{state.name} port {a.port}"
    if not view.admin_up:
        return None, f"{where} is shut"
    if not view.oper_up:
        return None, f"{where} has no link"
    if a.vlan is None:
        if view.pvid in view.untagged:
            return view.pvid, ""
        return None, f"{where} does not carry untagged frames (PVID {view.pvid} is not untagged there)"
    if a.vlan in view.tagged:
        return a.vlan, ""
    return None, f"{where} does not carry VLAN {a.vlan} tagged (tagged: {sorted(view.tagged) or 'none'})"


def reach(a: list[Attachment], b: list[Attachment], switches: Mapping[str, SwitchState]) -> tuple[bool, str]:
    reasons = []
    for x in a:
        vx, why_x = landing_vlan(switches[x.switch], x)
        if vx is None:
            reasons.append(why_x)
            continue
        for y in b:
            if y.switch != x.switch:
                continue
            vy, why_y = landing_vlan(switches[y.switch], y)
            if vy is None:
                reasons.append(why_y)
                continue
            if vx != vy:
                continue
            shared = [(ax, ay) for ax in x.addresses for ay in y.addresses
                      if ax.version == ay.version and ay.ip in ax.network]
            if shared:
                ax, ay = shared[0]
                return True, (f"both on VLAN {vx} via {x.switch} ports {x.port} and {y.port} "
                              f"({ax.ip} and {ay.ip} in {ax.network})")
            reasons.append(f"VLAN {vx} is shared but no subnet is")
    if not a or not b:
        return False, "a persona has no running incarnation with a configured interface"
    return False, "; ".join(dict.fromkeys(reasons)) or "no VLAN in common on any switch"
