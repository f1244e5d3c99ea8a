"""Arista EOS switches over SSH with netmiko, for sites whose switches are
managed from the CLI rather than SNMP.

Writes are EOS configuration commands (rendered by ``port_commands``);
reads use EOS's structured output (``show ... | json``), which Arista keeps
stable across releases, rather than screen-scraping tables. Each batch of
ports is one configuration session, then one read-back.

An untagged VLAN on a trunk is EOS's native VLAN, and it must be in the
allowed list to pass; a trunk without one keeps native VLAN 1 outside its
allowed list, so untagged frames are dropped, which reads back as "no
native VLAN".
"""

from __future__ import annotations

import json
import threading
from typing import Any, Protocol

from pydantic import Field

from voe.domain.models import Switch
from voe.domain.ports import PortConfig
from voe.drivers.base import DriverSettings, SwitchDriver
from voe.errors import DriverError, DriverTimeout

NO_NATIVE = 1  # EOS's default native VLAN, kept out of the allowed list


class EosSettings(DriverSettings):
    address: str
    port: int = Field(default=22, ge=1, le=65535)
    username: str = "admin"
    password: str = Field(default="", json_schema_extra={"secret": True})
    interface_prefix: str = Field(default="Ethernet", description="inventory port '7' is interface Ethernet7")


class Session(Protocol):
    """What the driver needs of netmiko's connection (and what tests fake)."""

    def send_command(self, command: str) -> str: ...
    def send_config_set(self, commands: list[str]) -> str: ...
    def disconnect(self) -> None: ...


def vlan_list(vlans: set[int] | frozenset[int]) -> str:
    """EOS's compact form: 100,200-202."""
    ranges: list[str] = []
    ordered = sorted(vlans)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        ranges.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(ranges) or "none"


def parse_vlan_list(text: str) -> set[int]:
    text = text.strip().upper()
    if text in ("", "NONE"):
        return set()
    if text == "ALL":
        return set(range(1, 4095))
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out |= set(range(int(lo), int(hi or lo) + 1))
    return out


def port_commands(interface: str, config: PortConfig, existing_vlans: set[int]) -> list[str]:
    """The configuration commands that make ``interface`` carry exactly
    ``config``, creating the VLANs the switch does not have yet."""
    cmds = [f"vlan {v}" for v in sorted(config.vlans() - existing_vlans)]
    cmds.append(f"interface {interface}")
    if config.mode == "access":
        cmds += ["switchport mode access", f"switchport access vlan {config.native_vlan or 1}"]
    else:
        native = config.native_vlan or NO_NATIVE
        cmds += ["switchport mode trunk", f"switchport trunk native vlan {native}",
                 f"switchport trunk allowed vlan {vlan_list(config.vlans())}"]
    cmds.append("no shutdown" if config.admin_up else "shutdown")
    return cmds


def parse_switchport(data: dict[str, Any], status: dict[str, Any], interface: str) -> PortConfig:
    """``show interfaces X switchport | json`` and ``show interfaces X status | json``."""
    info = data["switchports"][interface]["switchportInfo"]
    admin_up = status["interfaceStatuses"][interface]["linkStatus"] != "disabled"
    if info["mode"] == "access":
        return PortConfig.access(info["accessVlanId"], admin_up)
    allowed = parse_vlan_list(info["trunkAllowedVlans"])
    native = info["trunkingNativeVlanId"]
    return PortConfig.trunk(allowed, native if native in allowed else None, admin_up)


class EosSwitch(SwitchDriver):
    Settings = EosSettings

    def __init__(self, device: str, settings: EosSettings, connect=None):
        super().__init__(device, settings)
        self._connect = connect or self._netmiko
        self._session: Session | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_switch(cls, switch: Switch) -> EosSwitch:
        return cls(switch.name, EosSettings(address=switch.address, **switch.settings))

    def _netmiko(self) -> Session:
        from netmiko import ConnectHandler

        s: EosSettings = self.settings  # type: ignore[assignment]
        return ConnectHandler(device_type="arista_eos", host=s.address, port=s.port, username=s.username,
                              password=s.password, conn_timeout=s.timeout, auth_timeout=s.timeout,
                              read_timeout_override=s.timeout)

    def _run(self, operation: str, fn):
        from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException

        with self._lock:
            try:
                if self._session is None:
                    self._session = self._connect()
                return fn(self._session)
            except NetmikoAuthenticationException as e:
                self._session = None
                raise DriverError(self.device, operation, f"credentials refused: {e}") from None
            except NetmikoTimeoutException:
                self._session = None
                raise DriverTimeout(self.device, operation, self.settings.timeout) from None
            except OSError as e:
                self._session = None
                raise DriverError(self.device, operation, f"unreachable: {e}", transient=True) from None

    def _json(self, operation: str, command: str) -> dict[str, Any]:
        text = self._run(operation, lambda s: s.send_command(f"{command} | json"))
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise DriverError(self.device, operation, f"'{command} | json' did not answer JSON: {text[:200]!r}") from None

    def _interface(self, port: str) -> str:
        return port if not port.isdigit() else f"{self.settings.interface_prefix}{port}"  # type: ignore[attr-defined]

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.disconnect()
                self._session = None

    def check(self) -> str:
        v = self._json("check", "show version")
        return f"EOS {v.get('version', '?')} on {v.get('modelName', '?')}"

    def _read_port(self, port: str) -> PortConfig:
        name = self._interface(port)
        return parse_switchport(self._json(f"read port {port}", f"show interfaces {name} switchport"),
                                self._json(f"read port {port}", f"show interfaces {name} status"), name)

    def _list_vlans(self) -> set[int]:
        return {int(v) for v in self._json("list VLANs", "show vlan")["vlans"]}

    def _write_ports(self, configs: dict[str, PortConfig]) -> None:
        existing = self._list_vlans()
        cmds: list[str] = []
        for port, config in configs.items():
            cmds += port_commands(self._interface(port), config, existing)
            existing |= config.vlans()
        out = self._run(f"configure ports {', '.join(sorted(configs))}", lambda s: s.send_config_set(cmds))
        if "% " in out:  # EOS marks every refused command with "% "
            raise DriverError(self.device, "configure ports", out.strip().splitlines()[-1])

    def _write_port(self, port: str, config: PortConfig) -> None:
        self._write_ports({port: config})

    def _set_admin(self, port: str, up: bool) -> None:
        self._run(f"set port {port} admin", lambda s: s.send_config_set(
            [f"interface {self._interface(port)}", "no shutdown" if up else "shutdown"]))
