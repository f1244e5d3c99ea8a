"""Open vSwitch over its database protocol (OVSDB, RFC 7047, through
ovsdbapp, as OpenStack's agents drive it): the VLANs of the ports of one
OVS bridge, a hypervisor's or a software switch's.

A port's VLANs are its ``Port`` row's columns, as ``ovs-vsctl`` sets them:
an access port has ``tag``; a trunk has ``trunks`` and, when it carries
an untagged VLAN, ``tag`` with ``vlan_mode=native-untagged``. Every write
waits until ovs-vswitchd has applied it (``cur_cfg``), as ``ovs-vsctl``
does, before the base class reads it back.

OVSDB has no column that shuts a port, and an empty ``trunks`` means every
VLAN. So a port that must forward nothing (shut, or left with no VLAN) is
parked: a trunk of VLAN 4095 only, which 802.1Q reserves and no other port
carries, marked ``protected``, so that parked ports forward to none of
each other either. A shut port keeps the VLANs it will carry again in
``external_ids:voe-shut`` until it is opened.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from voe.domain.models import Switch
from voe.domain.ports import PortConfig
from voe.drivers.base import DriverSettings, SwitchDriver
from voe.errors import DriverError

PARKED = 4095
KEPT = "voe-shut"  # external_ids key: a shut port's VLANs, "native;tagged,tagged"


class OvsSettings(DriverSettings):
    remote: str = Field(default="", description="the OVSDB server, tcp:ADDRESS:6640 or unix:/run/openvswitch/db.sock "
                                                "(default: tcp: at the switch's address, port 6640)")
    bridge: str = Field(description="the OVS bridge whose ports the inventory names")


def _kept(config: PortConfig) -> str:
    return f"{config.native_vlan or ''};{','.join(map(str, sorted(config.tagged)))}"


def _from_kept(text: str) -> PortConfig:
    native, _, tagged = text.partition(";")
    return PortConfig.trunk({int(v) for v in tagged.split(",") if v}, int(native) if native else None, admin_up=False)


def columns(config: PortConfig) -> dict[str, Any]:
    """The ``Port`` columns that make a port carry ``config``."""
    if not config.admin_up or not config.vlans():
        return {"vlan_mode": "trunk", "tag": [], "trunks": [PARKED], "protected": True}
    if config.native_vlan is None:
        return {"vlan_mode": "trunk", "tag": [], "trunks": sorted(config.tagged), "protected": False}
    mode = "native-untagged" if config.tagged else "access"
    return {"vlan_mode": mode, "tag": config.native_vlan, "trunks": sorted(config.tagged), "protected": False}


def port_config(row: dict[str, Any]) -> PortConfig:
    """What a ``Port`` row carries."""
    tag = row["tag"][0] if isinstance(row["tag"], list) and row["tag"] else (row["tag"] or None)
    trunks = frozenset(row["trunks"])
    if row["protected"] and trunks == {PARKED} and tag is None:
        kept = row["external_ids"].get(KEPT)
        return _from_kept(kept) if kept is not None else PortConfig.trunk(frozenset())
    mode = row["vlan_mode"][0] if isinstance(row["vlan_mode"], list) and row["vlan_mode"] else row["vlan_mode"]
    mode = mode or ("access" if tag is not None else "trunk")  # OVS's own default for an unset vlan_mode
    if mode == "access":
        return PortConfig.access(tag)
    return PortConfig.trunk(trunks, tag if mode == "native-untagged" else None)


class OvsSwitch(SwitchDriver):
    Settings = OvsSettings

    def __init__(self, device: str, settings: OvsSettings):
        super().__init__(device, settings)
        self._connection: Any = None
        self._api: Any = None

    @classmethod
    def from_switch(cls, switch: Switch) -> OvsSwitch:
        s = dict(switch.settings)
        s.setdefault("remote", f"tcp:{switch.address}:6640")
        return cls(switch.name, OvsSettings(**s))

    @property
    def api(self) -> Any:
        """The OVSDB client, connected at first use (its own thread keeps
        the local copy of the database current)."""
        if self._api is None:
            from ovsdbapp.backend.ovs_idl import connection
            from ovsdbapp.schema.open_vswitch import impl_idl

            remote = self.settings.remote
            try:
                idl = connection.OvsdbIdl.from_server(remote, "Open_vSwitch")
                self._connection = connection.Connection(idl=idl, timeout=self.settings.timeout)
                self._api = impl_idl.OvsdbIdl(self._connection)
            except Exception as e:
                raise DriverError(self.device, f"connect to OVSDB at {remote}", str(e) or type(e).__name__,
                                  transient=True) from e
        return self._api

    def close(self) -> None:
        if self._connection is not None:
            self._connection.stop()
            self._connection = self._api = None

    def check(self) -> str:
        ports = self._execute("list ports", self.api.list_ports(self.settings.bridge))
        version = self._execute("read version", self.api.db_get("Open_vSwitch", ".", "ovs_version"))
        return f"Open vSwitch {version or '?'}: bridge {self.settings.bridge}, {len(ports)} ports"

    def _execute(self, operation: str, command: Any) -> Any:
        try:
            return command.execute(check_error=True, log_errors=False)
        except DriverError:
            raise
        except Exception as e:
            raise DriverError(self.device, operation, str(e) or type(e).__name__) from e

    def _row(self, port: str) -> dict[str, Any]:
        if port not in self._execute("list ports", self.api.list_ports(self.settings.bridge)):
            raise DriverError(self.device, f"port {port}", f"bridge {self.settings.bridge} has no such port")
        rows = self._execute(f"read port {port}", self.api.db_list(
            "Port", [port], columns=["tag", "trunks", "vlan_mode", "protected", "external_ids"]))
        return rows[0]

    def _read_port(self, port: str) -> PortConfig:
        return port_config(self._row(port))

    def _write_ports(self, configs: dict[str, PortConfig]) -> None:
        """Every port in one transaction, applied by ovs-vswitchd when it returns."""
        for port in configs:
            self._row(port)  # an unknown port is an error, never a new row
        with self.api.transaction(check_error=True) as txn:
            for port, config in configs.items():
                txn.add(self.api.db_set("Port", port, *columns(config).items()))
                if config.admin_up:
                    txn.add(self.api.db_remove("Port", port, "external_ids", KEPT, if_exists=True))
                else:
                    txn.add(self.api.db_set("Port", port, ("external_ids", {KEPT: _kept(config)})))

    def _write_port(self, port: str, config: PortConfig) -> None:
        self._write_ports({port: config})

    def _set_admin(self, port: str, up: bool) -> None:
        now = self._read_port(port)
        self._write_ports({port: PortConfig(now.mode, now.native_vlan, now.tagged, up)})

    def _list_vlans(self) -> set[int]:
        ports = self._execute("list ports", self.api.list_ports(self.settings.bridge))
        rows = self._execute("list VLANs", self.api.db_list("Port", ports, columns=["tag", "trunks"]))
        vlans: set[int] = set()
        for row in rows:
            tag = row["tag"]
            vlans |= set(tag if isinstance(tag, list) else [tag]) | set(row["trunks"])
        return vlans - {PARKED, 0}
