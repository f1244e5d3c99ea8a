"""The switch's MIB as pysnmp sees it: an instrumentation controller that
answers GET, GETNEXT/GETBULK and SET straight from a ``SwitchState``.

Objects served (numeric OIDs, so no MIB files are needed):

* SNMPv2-MIB (RFC 3418) sysDescr, sysObjectID, sysUpTime, sysName;
* IF-MIB (RFC 2863) ifNumber and ifTable: ifIndex, ifDescr, ifType,
  ifAdminStatus (writable), ifOperStatus;
* BRIDGE-MIB (RFC 4188) dot1dBaseNumPorts;
* Q-BRIDGE-MIB (RFC 4363) dot1qVlanStaticTable: Name, EgressPorts,
  ForbiddenEgressPorts, UntaggedPorts, RowStatus (all writable; RowStatus
  createAndGo / createAndWait / active / destroy), and dot1qPortVlanTable
  dot1qPvid (writable).

PortLists follow RFC 4363: the most significant bit of the first octet is
bridge port 1.
"""

from __future__ import annotations

import bisect
import time

from pyasn1.type import univ
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.smi import error as smi_error

from voe.lab.switch_state import SwitchState

SYS = (1, 3, 6, 1, 2, 1, 1)
SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, SYS_NAME = SYS + (1, 0), SYS + (2, 0), SYS + (3, 0), SYS + (5, 0)
IF_NUMBER = (1, 3, 6, 1, 2, 1, 2, 1, 0)
IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IF_INDEX, IF_DESCR, IF_TYPE, IF_ADMIN, IF_OPER = 1, 2, 3, 7, 8
DOT1D_BASE_NUM_PORTS = (1, 3, 6, 1, 2, 1, 17, 1, 2, 0)
VLAN_STATIC_ENTRY = (1, 3, 6, 1, 2, 1, 17, 7, 1, 4, 3, 1)
V_NAME, V_EGRESS, V_FORBIDDEN, V_UNTAGGED, V_ROW_STATUS = 1, 2, 3, 4, 5
PORT_VLAN_ENTRY = (1, 3, 6, 1, 2, 1, 17, 7, 1, 4, 5, 1)
PVID = 1
ETHERNET_CSMACD = 6  # IANAifType
UP, DOWN = 1, 2


def encode_portlist(ports: set[int], count: int) -> bytes:
    out = bytearray((count + 7) // 8)
    for p in ports:
        if 1 <= p <= count:
            out[(p - 1) // 8] |= 0x80 >> ((p - 1) % 8)
    return bytes(out)


def decode_portlist(octets: bytes) -> set[int]:
    return {i * 8 + b + 1 for i, o in enumerate(octets) for b in range(8) if o & (0x80 >> b)}


class SwitchMib:
    """pysnmp calls ``read_variables``, ``read_next_variables`` and
    ``write_variables`` with var-binds; each answers from the state."""

    def __init__(self, state: SwitchState, descr: str):
        self.state = state
        self.descr = descr
        self.started = time.monotonic()
        self._tree: tuple[float, list, dict] | None = None

    def _sorted(self) -> tuple[list, dict]:
        """The tree and its sorted keys, reused for 0.2 s and dropped on any
        write: a GETBULK walks it once per repetition."""
        now = time.monotonic()
        if self._tree is None or now - self._tree[0] > 0.2:
            objs = self._objects()
            self._tree = (now, sorted(objs), objs)
        return self._tree[1], self._tree[2]

    # --- the tree, rebuilt per request (a switch has at most a few hundred objects)

    def _objects(self) -> dict[tuple[int, ...], object]:
        s = self.state
        n = s.port_count
        objs: dict[tuple[int, ...], object] = {
            SYS_DESCR: rfc1902.OctetString(self.descr),
            SYS_OBJECT_ID: rfc1902.ObjectIdentifier((1, 3, 6, 1, 4, 1, 8072, 3, 2, 10)),
            SYS_UPTIME: rfc1902.TimeTicks(int((time.monotonic() - self.started) * 100)),
            SYS_NAME: rfc1902.OctetString(s.name),
            IF_NUMBER: rfc1902.Integer32(n),
            DOT1D_BASE_NUM_PORTS: rfc1902.Integer32(n),
        }
        with s.lock:
            for p in range(1, n + 1):
                objs[IF_ENTRY + (IF_INDEX, p)] = rfc1902.Integer32(p)
                objs[IF_ENTRY + (IF_DESCR, p)] = rfc1902.OctetString(s.port_names[p - 1])
                objs[IF_ENTRY + (IF_TYPE, p)] = rfc1902.Integer32(ETHERNET_CSMACD)
                objs[IF_ENTRY + (IF_ADMIN, p)] = rfc1902.Integer32(UP if s.admin_up[p] else DOWN)
                objs[IF_ENTRY + (IF_OPER, p)] = rfc1902.Integer32(UP if s.oper_up(p) else DOWN)
                objs[PORT_VLAN_ENTRY + (PVID, p)] = rfc1902.Gauge32(s.pvid[p])
            for v, vl in s.vlans.items():
                objs[VLAN_STATIC_ENTRY + (V_NAME, v)] = rfc1902.OctetString(vl.name)
                objs[VLAN_STATIC_ENTRY + (V_EGRESS, v)] = rfc1902.OctetString(encode_portlist(vl.egress, n))
                objs[VLAN_STATIC_ENTRY + (V_FORBIDDEN, v)] = rfc1902.OctetString(encode_portlist(set(), n))
                objs[VLAN_STATIC_ENTRY + (V_UNTAGGED, v)] = rfc1902.OctetString(encode_portlist(vl.untagged, n))
                objs[VLAN_STATIC_ENTRY + (V_ROW_STATUS, v)] = rfc1902.Integer32(vl.status)
        return objs

    def read_variables(self, *var_binds, **context):
        _, objs = self._sorted()
        out = []
        for oid, _ in var_binds:
            key = tuple(oid)
            out.append((oid, objs[key] if key in objs else rfc1905.noSuchInstance))
        return out

    def read_next_variables(self, *var_binds, **context):
        keys, objs = self._sorted()
        out = []
        for oid, _ in var_binds:
            i = bisect.bisect_right(keys, tuple(oid))
            if i < len(keys):
                out.append((univ.ObjectIdentifier(keys[i]), objs[keys[i]]))
            else:
                out.append((oid, rfc1905.endOfMibView))
        return out

    def write_variables(self, *var_binds, **context):
        # Row creation first, so one PDU may create a VLAN and set its ports.
        ordered = sorted(var_binds, key=lambda vb: 0 if tuple(vb[0])[:-1] == VLAN_STATIC_ENTRY + (V_ROW_STATUS,) else 1)
        try:
            with self.state.change():
                for oid, value in ordered:
                    self._write(tuple(oid), value)
        finally:
            self._tree = None
        return list(var_binds)

    def _write(self, oid: tuple[int, ...], value) -> None:
        s = self.state
        table, column, index = oid[:-2], oid[-2], oid[-1]
        try:
            if table == IF_ENTRY and column == IF_ADMIN and 1 <= index <= s.port_count:
                if int(value) not in (UP, DOWN):
                    raise smi_error.WrongValueError(name=oid, idx=0)
                s.set_admin(index, int(value) == UP)
            elif table == VLAN_STATIC_ENTRY and column == V_ROW_STATUS and 1 <= index <= 4094:
                s.set_row_status(index, int(value))
            elif table == VLAN_STATIC_ENTRY and index in s.vlans:
                if column == V_EGRESS:
                    s.set_egress(index, decode_portlist(bytes(value)))
                elif column == V_UNTAGGED:
                    s.set_untagged(index, decode_portlist(bytes(value)))
                elif column == V_NAME:
                    s.set_name(index, bytes(value).decode(errors="replace"))
                elif column == V_FORBIDDEN:
                    pass  # accepted, not modelled: voe never forbids
                else:
                    raise smi_error.NotWritableError(name=oid, idx=0)
            elif table == PORT_VLAN_ENTRY and column == PVID and 1 <= index <= s.port_count:
                s.set_pvid(index, int(value))
            else:
                raise smi_error.NotWritableError(name=oid, idx=0)
        except ValueError:
            raise smi_error.InconsistentValueError(name=oid, idx=0) from None
