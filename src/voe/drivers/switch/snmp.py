"""Switch driver over SNMP: IF-MIB for admin state, Q-BRIDGE-MIB (RFC 4363)
for VLAN membership, as most managed switches implement them.

A port's configuration is written as the switch keeps it: per VLAN, the
egress and untagged PortLists (most significant bit of the first octet is
bridge port 1), plus the port's PVID. A VLAN that does not exist yet is
created with RowStatus createAndGo. Every write is read back by the base
class before it counts.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Literal

from pydantic import Field
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
    set_cmd,
    usmAesCfb128Protocol,
    usmDESPrivProtocol,
    usmHMACMD5AuthProtocol,
    usmHMACSHAAuthProtocol,
)
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.smi.builder import MibBuilder
from pysnmp.smi.view import MibViewController

from voe.domain.models import Switch
from voe.domain.ports import PortConfig
from voe.drivers.base import DriverSettings, SwitchDriver
from voe.errors import DriverError, DriverTimeout

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
IF_NUMBER = "1.3.6.1.2.1.2.1.0"
IF_ADMIN_STATUS = "1.3.6.1.2.1.2.2.1.7"          # IF-MIB, RFC 2863
VLAN_STATIC = "1.3.6.1.2.1.17.7.1.4.3.1"         # Q-BRIDGE-MIB dot1qVlanStaticEntry, RFC 4363
EGRESS, UNTAGGED, ROW_STATUS = f"{VLAN_STATIC}.2", f"{VLAN_STATIC}.4", f"{VLAN_STATIC}.5"
PVID = "1.3.6.1.2.1.17.7.1.4.5.1.1"              # dot1qPvid
CREATE_AND_GO = 4
UP, DOWN = 1, 2
READ_TRIES = 4  # a read is sent up to this many times within the driver's timeout
MAX_VARBINDS = 48  # per SET: a PDU of 48 port lists and integers stays well inside one UDP datagram
WALK_ROWS = 50  # per GETBULK at most, per column

SECRET = {"secret": True}


class SnmpSettings(DriverSettings):
    address: str = Field(description="management address")
    port: int = Field(default=161, ge=1, le=65535)
    version: Literal["2c", "3"] = "2c"
    community: str = Field(default="private", description="read-write community (v2c)", json_schema_extra=SECRET)
    user: str | None = Field(default=None, description="SNMPv3 user (authPriv)")
    auth_key: str | None = Field(default=None, json_schema_extra=SECRET)
    priv_key: str | None = Field(default=None, json_schema_extra=SECRET)
    auth_protocol: Literal["sha", "md5"] = "sha"
    priv_protocol: Literal["aes", "des"] = "aes"


def encode_portlist(ports: set[int], count: int) -> bytes:
    out = bytearray((count + 7) // 8)
    for p in ports:
        out[(p - 1) // 8] |= 0x80 >> ((p - 1) % 8)
    return bytes(out)


def decode_portlist(octets: bytes) -> set[int]:
    return {i * 8 + b + 1 for i, o in enumerate(octets) for b in range(8) if o & (0x80 >> b)}


_MIB_VIEW: MibViewController | None = None
_MIB_VIEW_LOCK = threading.Lock()


class _NoMibCompiler:
    """Stands where pysnmp would put pysmi's MIB compiler. Every OID here is
    numeric and every MIB module pysnmp needs ships compiled with it, so
    nothing is ever compiled; building the compiler (its parser grammar) was
    a quarter second of CPU in the first second of a controller just
    restarted, when its first switch verdicts are due (see
    ``DeviceWatch.await_verdicts``). A module not found stays not found."""

    def compile(self, *names: str, **_options) -> dict[str, str]:
        return dict.fromkeys(names, "missing")


def _shared_mib_view() -> MibViewController:
    """pysnmp gives every engine a MIB view of its own and, at its first
    request, a MIB compiler (a parser grammar, costly to build). Every OID
    here is numeric, so one view, loaded once, serves every switch and
    probe session of the process."""
    global _MIB_VIEW
    with _MIB_VIEW_LOCK:
        if _MIB_VIEW is None:
            builder = MibBuilder()
            builder.set_mib_compiler(_NoMibCompiler(), builder.get_mib_sources()[0].full_path())
            view = MibViewController(builder)
            ObjectType(ObjectIdentity(SYS_DESCR)).resolve_with_mib(view)  # index built here, not under traffic
            _MIB_VIEW = view
        return _MIB_VIEW


class SnmpSwitch(SwitchDriver):
    Settings = SnmpSettings

    def __init__(self, device: str, settings: SnmpSettings, ports: dict[str, int] | None = None):
        super().__init__(device, settings)
        self.ports = ports or {}
        self._loop = asyncio.new_event_loop()
        self._engine = SnmpEngine()
        self._engine.cache["mibViewController"] = _shared_mib_view()
        self._lock = threading.Lock()  # one request at a time on this driver's loop
        self._transports: dict[bool, UdpTransportTarget] = {}
        self._rows: dict[tuple[str, ...], int] = {}  # columns walked -> the rows they had

    @classmethod
    def from_switch(cls, switch: Switch) -> SnmpSwitch:
        s = dict(switch.settings)
        v3 = s.pop("v3", None)
        if v3:
            s.update(version="3", **v3)
        settings = SnmpSettings(address=switch.address, **s)
        return cls(switch.name, settings, {p.name: switch.port_number(p.name) for p in switch.ports})

    def close(self) -> None:
        """After the request under way on another thread, if any (within
        its timeout): a loop is not closed while it runs."""
        with self._lock:
            if not self._loop.is_closed():
                self._loop.close()

    # --- transport ----------------------------------------------------------

    def _auth(self):
        s = self.settings
        if s.version == "3":
            return UsmUserData(s.user, s.auth_key, s.priv_key,
                               authProtocol={"sha": usmHMACSHAAuthProtocol, "md5": usmHMACMD5AuthProtocol}[s.auth_protocol],
                               privProtocol={"aes": usmAesCfb128Protocol, "des": usmDESPrivProtocol}[s.priv_protocol])
        return CommunityData(s.community, mpModel=1)

    def _run(self, operation: str, coro_fn) -> Any:
        with self._lock:
            if self._loop.is_closed():
                raise DriverError(self.device, operation, "this driver was closed (its controller is stopping)")
            try:
                return self._loop.run_until_complete(asyncio.wait_for(coro_fn(), self.settings.timeout + 1))
            except TimeoutError:
                raise DriverTimeout(self.device, operation, self.settings.timeout) from None

    async def _target(self, resend: bool = True):
        """Created once each: address resolution is not free. Reads resend
        within the driver's timeout (``READ_TRIES`` tries), as net-snmp's
        tools do: a request sent while a switch reboots is lost, and without
        a resend a switch back up would still count as silent for a whole
        timeout. A SET is sent once: a resent row creation could meet the
        row its lost answer had already made."""
        if resend not in self._transports:
            tries = READ_TRIES if resend else 1
            self._transports[resend] = await UdpTransportTarget.create(
                (self.settings.address, self.settings.port), timeout=self.settings.timeout / tries, retries=tries - 1)
        return self._transports[resend]

    def _check(self, operation: str, error_indication, error_status, error_index) -> None:
        if error_indication:
            transient = "timeout" in str(error_indication).lower() or "no snmp response" in str(error_indication).lower()
            raise DriverError(self.device, operation, str(error_indication), transient=transient)
        if error_status:
            raise DriverError(self.device, operation, f"agent answered {error_status.prettyPrint()} at var-bind {error_index}")

    def get(self, *oids: str) -> list:
        async def go():
            r = await get_cmd(self._engine, self._auth(), await self._target(), ContextData(),
                              *[ObjectType(ObjectIdentity(o)) for o in oids])
            self._check("get", *r[:3])
            return [v for _, v in r[3]]
        return self._run("get", go)

    def walk(self, oid: str) -> dict[int, Any]:
        """Column walk: last sub-identifier -> value."""
        return self.walk_columns(oid)[0]

    def walk_columns(self, *oids: str) -> list[dict[int, Any]]:
        """Walk columns of one table side by side (last sub-identifier ->
        value, per column): each GETBULK asks for every column still going,
        so two columns cost the round trips of one. It asks for one row more
        than the columns had at the last walk (``WALK_ROWS`` the first
        time), not a fixed fifty: decoding the rows past a short table's end
        would be most of what a port write costs. A table that grew since
        is walked on in further rounds."""
        prefixes = [tuple(int(x) for x in o.split(".")) for o in oids]
        rows = min(WALK_ROWS, self._rows.get(oids, WALK_ROWS - 1) + 1)

        async def go():
            out: list[dict[int, Any]] = [{} for _ in oids]
            cursor = {k: ObjectIdentity(o) for k, o in enumerate(oids)}
            while cursor:
                going = sorted(cursor)
                ei, es, ex, vbs = await bulk_cmd(self._engine, self._auth(), await self._target(), ContextData(),
                                                 0, rows, *[ObjectType(cursor[k]) for k in going])
                self._check(f"walk {', '.join(oids)}", ei, es, ex)
                if not vbs:
                    break
                for i, (name, value) in enumerate(vbs):
                    k = going[i % len(going)]
                    if k not in cursor:
                        continue
                    oid = tuple(name)
                    if isinstance(value, rfc1905.EndOfMibView) or oid[:len(prefixes[k])] != prefixes[k]:
                        del cursor[k]  # this column is done
                        continue
                    out[k][oid[-1]] = value
                    cursor[k] = ObjectIdentity(name)
            return out
        columns = self._run(f"walk {', '.join(oids)}", go)
        self._rows[oids] = max(len(c) for c in columns)
        return columns

    def set(self, *pairs: tuple[str, Any]) -> None:
        async def go():
            r = await set_cmd(self._engine, self._auth(), await self._target(resend=False), ContextData(),
                              *[ObjectType(ObjectIdentity(o), v) for o, v in pairs])
            self._check("set", *r[:3])
        self._run("set", go)

    # --- the switch interface -------------------------------------------------

    def check(self) -> str:
        descr, count = self.get(SYS_DESCR, IF_NUMBER)
        return f"{descr.prettyPrint()}; {int(count)} interfaces"

    def _number(self, port: str) -> int:
        if port in self.ports:
            return self.ports[port]
        if port.isdigit():
            return int(port)
        raise DriverError(self.device, f"port {port}", "unknown port name")

    def _vlan_table(self) -> tuple[dict[int, set[int]], dict[int, set[int]]]:
        egress, untagged = self.walk_columns(EGRESS, UNTAGGED)
        return ({v: decode_portlist(bytes(x)) for v, x in egress.items()},
                {v: decode_portlist(bytes(x)) for v, x in untagged.items()})

    def _read_port(self, port: str) -> PortConfig:
        return self._read_ports([port])[port]

    def _read_ports(self, ports: list[str]) -> dict[str, PortConfig]:
        egress, untagged = self._vlan_table()
        numbers = {p: self._number(p) for p in ports}
        oids = [o for n in numbers.values() for o in (f"{IF_ADMIN_STATUS}.{n}", f"{PVID}.{n}")]
        values = self.get(*oids)
        out = {}
        for k, (port, n) in enumerate(numbers.items()):
            admin = values[2 * k]
            native = [v for v, members in untagged.items() if n in members and n in egress.get(v, set())]
            tagged = frozenset(v for v, members in egress.items() if n in members and v not in native)
            out[port] = PortConfig("trunk" if tagged else "access", native[0] if native else None, tagged,
                                   int(admin) == UP)
        return out

    def _write_port(self, port: str, config: PortConfig) -> None:
        self._write_ports({port: config})

    def _write_ports(self, configs: dict[str, PortConfig]) -> None:
        """One read of the VLAN table, a SET creating any VLAN missing, then
        one SET for everything else (the members of each VLAN that changes,
        egress and untagged together, the PVIDs, admin state), however many
        ports are in the batch: a SET's var-binds apply as one (RFC 3416)."""
        numbers = {p: self._number(p) for p in configs}
        count = max([len(self.ports)] + list(numbers.values()))
        egress, untagged = self._vlan_table()
        wanted = set().union(*(c.vlans() for c in configs.values()))
        missing = sorted(wanted - set(egress))
        if missing:
            self._set_all([(f"{ROW_STATUS}.{v}", rfc1902.Integer32(CREATE_AND_GO)) for v in missing])
            for v in missing:
                egress[v], untagged[v] = set(), set()
        pairs: list[tuple[str, Any]] = []
        for v in sorted(egress):
            e, u = set(egress[v]), set(untagged.get(v, set()))
            new_e, new_u = set(e), set(u)
            for port, config in configs.items():
                n = numbers[port]
                (new_e.add if v in config.vlans() else new_e.discard)(n)
                (new_u.add if v == config.native_vlan else new_u.discard)(n)
            if new_e != e or new_u != u:
                pairs += [(f"{EGRESS}.{v}", rfc1902.OctetString(encode_portlist(new_e, count))),
                          (f"{UNTAGGED}.{v}", rfc1902.OctetString(encode_portlist(new_u, count)))]
        pairs += [(f"{PVID}.{numbers[p]}", rfc1902.Gauge32(c.native_vlan)) for p, c in configs.items() if c.native_vlan]
        pairs += [(f"{IF_ADMIN_STATUS}.{numbers[p]}", rfc1902.Integer32(UP if c.admin_up else DOWN))
                  for p, c in configs.items()]
        self._set_all(pairs)

    def _set_all(self, pairs: list[tuple[str, Any]]) -> None:
        """As few SETs as the PDU size allows, in order."""
        for k in range(0, len(pairs), MAX_VARBINDS):
            self.set(*pairs[k:k + MAX_VARBINDS])

    def _set_admin(self, port: str, up: bool) -> None:
        self.set((f"{IF_ADMIN_STATUS}.{self._number(port)}", rfc1902.Integer32(UP if up else DOWN)))

    def _list_vlans(self) -> set[int]:
        return set(self.walk(ROW_STATUS))
