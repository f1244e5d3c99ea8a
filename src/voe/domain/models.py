"""The inventory: what hardware exists, how it is cabled, and which personas and
applications should run. Pure data with field-level validation; rules that span
objects (unknown network, duplicate MAC, cycles) live in ``inventory.py``.

Every model forbids unknown fields, so a typo in a file is an error that names
the field instead of a setting silently ignored.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
Name = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="lower-case letters, digits and '-', 1-63 characters, as a DNS label",
    ),
]

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def _normalize_mac(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    mac = value.strip().lower().replace("-", ":")
    if re.fullmatch(r"[0-9a-f]{12}", mac):
        mac = ":".join(mac[i : i + 2] for i in range(0, 12, 2))
    if not _MAC_RE.match(mac):
        raise ValueError(f"{value!r} is not a MAC address; write six hex pairs such as 02:56:4f:00:00:01")
    if int(mac[:2], 16) & 1:
        raise ValueError(f"{value!r} is a multicast MAC address; a NIC needs a unicast one")
    return mac


MacAddress = Annotated[str, BeforeValidator(_normalize_mac)]

_SIZE_RE = re.compile(r"^\s*(\d+)\s*(mib|gib|tib|m|g|t|mb|gb|tb)?\s*$", re.IGNORECASE)
_SIZE_FACTOR = {None: 1, "m": 1, "mb": 1, "mib": 1, "g": 1024, "gb": 1024, "gib": 1024,
                "t": 1024**2, "tb": 1024**2, "tib": 1024**2}


def _parse_mib(value: Any) -> Any:
    """Accept ``16384``, ``"16GiB"`` or ``"512MiB"``; store MiB."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of MiB or a string such as '16GiB'")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if not m:
            raise ValueError(f"{value!r} is not a size; write a number of MiB or e.g. '16GiB'")
        unit = m.group(2).lower() if m.group(2) else None
        return int(m.group(1)) * _SIZE_FACTOR[unit]
    return value


def _format_mib(mib: int) -> str | int:
    if mib and mib % 1024 == 0:
        return f"{mib // 1024}GiB"
    return f"{mib}MiB"


MiB = Annotated[
    int,
    BeforeValidator(_parse_mib),
    Field(ge=0),
    PlainSerializer(_format_mib, return_type=str, when_used="json"),
]
Labels = dict[str, str]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False, populate_by_name=True)


# --- networks ---------------------------------------------------------------


class Network(Model):
    """An L2 segment (a vSwitch): one VLAN, one subnet."""

    name: Name
    vlan: int = Field(ge=1, le=4094, description="802.1Q VLAN id, 1-4094")
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network
    subnet6: ipaddress.IPv6Network | None = None
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    dns: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = Field(
        default_factory=list, description="name servers of the network, given to every vNIC on it")
    description: str = ""

    @field_validator("vlan", mode="before")
    @classmethod
    def _vlan_range(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool) and not 1 <= v <= 4094:
            raise ValueError(f"VLAN {v} is outside 1-4094 (0 is priority tagging, 4095 is reserved)")
        return v

    @field_validator("subnet", "subnet6", mode="before")
    @classmethod
    def _strict_subnet(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                ipaddress.ip_network(v, strict=True)
            except ValueError as e:
                raise ValueError(f"{v!r} is not a subnet ({e}); write e.g. 10.0.1.0/24") from None
        return v

    @model_validator(mode="after")
    def _gateway_inside(self) -> Network:
        if self.gateway is not None:
            nets = [self.subnet] + ([self.subnet6] if self.subnet6 else [])
            if not any(self.gateway.version == n.version and self.gateway in n for n in nets):
                raise ValueError(f"gateway {self.gateway} is outside subnet {self.subnet}")
        return self


# --- switches ---------------------------------------------------------------


class SwitchPort(Model):
    name: str = Field(min_length=1, description="port name as the switch calls it, e.g. '1' or 'Ethernet1'")
    index: int | None = Field(default=None, ge=1, description="bridge port number / ifIndex when it differs from the position")
    description: str = ""


class Switch(Model):
    name: Name
    address: str = Field(min_length=1, description="management address (host or IP)")
    model: str = ""
    driver: str = "snmp"
    settings: dict[str, Any] = Field(default_factory=dict, description="driver settings (see `voe driver schema`)")
    ports: list[SwitchPort] = Field(default_factory=list)
    mlag_peer: Name | None = Field(default=None, description="the switch this one forms an MLAG pair with: an LACP "
                                                              "bond may span the two")

    @field_validator("ports", mode="before")
    @classmethod
    def _port_count(cls, v: Any) -> Any:
        """``ports: 24`` is shorthand for ports named 1..24."""
        if isinstance(v, int) and not isinstance(v, bool):
            return [{"name": str(i)} for i in range(1, v + 1)]
        return v

    @model_validator(mode="after")
    def _unique_ports(self) -> Switch:
        seen: set[str] = set()
        for p in self.ports:
            if p.name in seen:
                raise ValueError(f"port {p.name!r} is listed twice")
            seen.add(p.name)
        return self

    def port_number(self, port: str) -> int:
        """1-based bridge port number of a port (its position unless given)."""
        for i, p in enumerate(self.ports, start=1):
            if p.name == port:
                return p.index or i
        raise KeyError(port)


# --- hosts ------------------------------------------------------------------


class Bmc(Model):
    driver: Literal["ipmi", "redfish"] = "ipmi"
    address: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535, description="623 for IPMI, 443 for Redfish when absent")
    username: str = ""
    password: str | None = Field(default=None, description="secret: encrypted at rest, never returned")
    verify_tls: bool = False
    scheme: Literal["https", "http"] = Field(default="https", description="Redfish only: http for emulators and labs")

    def effective_port(self) -> int:
        return self.port or (623 if self.driver == "ipmi" else 443)


class Nic(Model):
    name: str = Field(min_length=1, description="OS name of the NIC, e.g. eth0")
    mac: MacAddress
    switch: Name | None = None
    port: str | None = None
    labels: list[str] = Field(default_factory=list, description="what the NIC is (e.g. 10g, storage): a vNIC may ask "
                                                                "for a NIC by label")

    @property
    def port_key(self) -> tuple[str, str]:
        """(switch, port) of a cabled NIC."""
        if self.switch is None or self.port is None:
            raise ValueError(f"NIC {self.name} is not cabled to a switch")
        return self.switch, self.port

    @model_validator(mode="after")
    def _both_or_neither(self) -> Nic:
        if (self.switch is None) != (self.port is None):
            raise ValueError("a cabled NIC names both switch and port")
        return self


class Hba(Model):
    kind: Literal["iscsi", "fc"]
    vendor: str = ""
    model: str = ""
    wwpn: str | None = None


class HypervisorSpec(Model):
    """A hypervisor on a host, offering VM slots."""

    driver: str = Field(min_length=1, description="hypervisor driver, e.g. libvirt or lab")
    url: str = Field(min_length=1)
    username: str = ""
    password: str | None = Field(default=None, description="secret: encrypted at rest, never returned")
    cpus: int = Field(ge=0, description="vCPUs offered to VMs")
    memory: MiB = Field(description="memory offered to VMs")
    settings: dict[str, Any] = Field(default_factory=dict, description="driver settings (see `voe driver schema`), "
                                                                      "e.g. vsphere's esx_host and datastore")


class StorageSpec(Model):
    """A storage service on a host (NFS roots, iSCSI LUNs): voe grants each
    persona's current incarnation access and revokes it when it ends."""

    driver: str = Field(min_length=1, description="storage driver: tgt, ganesha, lab")
    serves: list[str] = Field(min_length=1, description="addresses personas' images name (the server of an "
                                                         "nfs_root, the host of a target_portal)")
    settings: dict[str, Any] = Field(default_factory=dict, description="driver settings (see `voe driver schema`)")


FenceLevel = Literal["bmc", "hypervisor", "hypervisor-host-bmc", "fabric"]


class LabMachine(Model):
    """How ``voe lab`` emulates a host; the controller ignores it."""

    backend: Literal["process", "kvm"] = Field(default="process", description=(
        "process: the persona's agent as a process; kvm: a QEMU virtual machine that network-boots for real"))
    memory: MiB = Field(default=384, description="a kvm machine's RAM (the host's own memory is what placement counts)")
    cpus: int = Field(default=1, ge=1, le=8, description="a kvm machine's vCPUs (the host's own cpus are what "
                                                         "placement counts)")


class Host(Model):
    name: Name
    model: str = ""
    bmc: Bmc
    nics: list[Nic] = Field(default_factory=list)
    cpus: int = Field(ge=1)
    memory: MiB
    hbas: list[Hba] = Field(default_factory=list)
    local_disk: bool = False
    schedulable: bool = Field(default=True, description="false keeps personas off this host (infrastructure, maintenance)")
    labels: Labels = Field(default_factory=dict)
    hypervisor: HypervisorSpec | None = None
    storage: StorageSpec | None = None
    fencing: list[FenceLevel] | None = Field(default=None, description="fence levels tried in order")
    machine: LabMachine | None = Field(default=None, description="how the lab emulates this host")

    @model_validator(mode="after")
    def _unique_nics(self) -> Host:
        names = [n.name for n in self.nics]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"NIC name {sorted(dup)[0]!r} is listed twice")
        return self


# --- personas ---------------------------------------------------------------

BootKind = Literal["linux-nfs", "iscsi", "fc"]


class Image(Model):
    """Where the persona's OS lives. Which fields apply follows the boot kind."""

    template: str | None = Field(default=None, description="the template this image was cloned from")
    template_version: int | None = Field(default=None, ge=1, description="which version of the template")
    nfs_root: str | None = Field(default=None, description="server:/path of the NFS root (linux-nfs)")
    kernel: str | None = None
    initrd: str | None = None
    target_iqn: str | None = Field(default=None, description="iSCSI target IQN (iscsi)")
    target_portal: str | None = None
    disk: str | None = Field(default=None, description="the disk image behind the LUN, on the storage server "
                                                       "(iscsi; default: its lun_dir's PERSONA.img)")
    target_wwpn: str | None = Field(default=None, description="FC target WWPN (fc)")
    lun: int = Field(default=0, ge=0)


BondMode = Literal["active-backup", "lacp"]


class Bond(Model):
    """Host NICs bonded into one link: ``active-backup`` over any switches
    (one member carries the traffic, another takes over when its link or
    switch fails), ``lacp`` (802.3ad) over NICs on one switch or an MLAG
    pair. ``bond: active-backup`` is short for ``bond: {mode: active-backup}``."""

    mode: BondMode
    nics: int = Field(default=2, ge=2, le=8, description="how many host NICs the bond takes")
    label: str | None = Field(default=None, description="only host NICs with this label")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"mode": v} if isinstance(v, str) else v


class NicLabel(Model):
    label: str = Field(min_length=1, description="a label the host NIC carries")


class Trunk(Model):
    """The 802.1q trunk of a persona on a physical server: it carries every
    vNIC without a NIC of its own."""

    bond: Bond | None = Field(default=None, description="bond the trunk over several host NICs")


class Vnic(Model):
    """A persona's identity on one network; follows the persona to every machine."""

    network: Name
    mac: MacAddress | None = Field(default=None, description="auto-assigned from the locally administered pool when absent")
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = Field(
        default=None, description="auto-assigned from the network's subnet when absent; the prefix comes from the network"
    )
    dedicated: bool = Field(default=False, description="a host NIC of its own (an access port) rather than a VLAN "
                                                        "on the trunk")
    nic: str | NicLabel | None = Field(default=None, description="the host NIC it gets, by name (storage0) or by "
                                                                 "label ({label: 10g}); implies dedicated")
    bond: Bond | None = Field(default=None, description="host NICs of its own, bonded; implies dedicated")
    boot: bool = False

    @property
    def own_nics(self) -> bool:
        """Whether the vNIC has host NICs of its own on a physical server."""
        return self.dedicated or self.nic is not None or self.bond is not None

    @model_validator(mode="after")
    def _nic_or_bond(self) -> Vnic:
        if self.nic is not None and self.bond is not None:
            raise ValueError("a vNIC takes nic or bond, not both: choose a bond's NICs with bond.label")
        return self

    @field_validator("ip", mode="before")
    @classmethod
    def _address_only(cls, v: Any) -> Any:
        if isinstance(v, str) and "/" in v:
            raise ValueError(f"{v!r}: write the address alone (e.g. {v.split('/')[0]}); the prefix comes from the network")
        return v


class San(Model):
    initiator_iqn: str | None = Field(default=None, description="generated when absent")
    wwpn: str | None = Field(default=None, description="generated when absent (fc)")

    @field_validator("wwpn")
    @classmethod
    def _wwpn_form(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){7}", v.lower()):
            raise ValueError(f"{v!r} is not a WWPN; write eight hex pairs such as 20:00:00:25:b5:00:00:01")
        return v.lower() if v else v


VM_FIRST: tuple[Literal["vm", "physical"], ...] = ("vm", "physical")
"""A persona's preference unless it says otherwise."""


class Policy(Model):
    prefer: list[Literal["vm", "physical"]] = Field(default_factory=lambda: list(VM_FIRST))
    labels: Labels = Field(default_factory=dict, description="labels a machine must carry")
    anti_affinity: str | None = Field(default=None, description="personas sharing this set never share a host")
    strategy: Literal["pack", "spread"] = "pack"
    watchdog: bool = False

    @field_validator("prefer")
    @classmethod
    def _prefer_nonempty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("prefer lists at least one of vm, physical")
        if len(set(v)) != len(v):
            raise ValueError("prefer lists each kind once")
        return v


DesiredState = Literal["running", "stopped"]


class Persona(Model):
    name: Name
    description: str = ""
    boot: BootKind = "linux-nfs"
    image: Image = Field(default_factory=Image)
    cpus: int = Field(default=1, ge=1)
    memory: MiB = 1024
    vnics: list[Vnic] = Field(default_factory=list)
    trunk: Trunk = Field(default_factory=Trunk)
    san: San = Field(default_factory=San)
    policy: Policy = Field(default_factory=Policy)
    labels: Labels = Field(default_factory=dict)
    desired: DesiredState = "stopped"
    app_check: str | None = Field(default=None, description="command the agent runs to report the application ready")

    @model_validator(mode="after")
    def _image_fits_boot(self) -> Persona:
        img = self.image
        if self.boot == "iscsi" and img.template is None and not img.target_iqn:
            raise ValueError("an iscsi persona's image names target_iqn (and lun), or a template")
        if self.boot == "fc" and not img.target_wwpn:
            raise ValueError("an fc persona's image names target_wwpn (and lun)")
        if self.boot == "linux-nfs" and img.template is None and not img.nfs_root:
            raise ValueError("a linux-nfs persona's image names nfs_root, or a template")
        return self


# --- groups -----------------------------------------------------------------


class Group(Model):
    """An application: personas started and stopped as one, in dependency order."""

    name: Name
    description: str = ""
    members: list[Name] = Field(default_factory=list)
    depends: dict[Name, list[Name]] = Field(
        default_factory=dict, description="member -> the members it needs running first"
    )
    desired: DesiredState = "stopped"


KINDS: dict[str, type[Model]] = {
    "networks": Network,
    "switches": Switch,
    "hosts": Host,
    "personas": Persona,
    "groups": Group,
}
"""Inventory kinds in the order they depend on each other (create in this order,
delete in reverse)."""

SECRET_FIELDS: dict[str, list[tuple[str, ...]]] = {
    "hosts": [("bmc", "password"), ("hypervisor", "password"), ("hypervisor", "settings", "password"),
              ("storage", "settings", "password")],
    "switches": [("settings", "community"), ("settings", "password"), ("settings", "v3", "auth_key"),
                 ("settings", "v3", "priv_key")],
}
"""Where secrets sit inside each kind; stripped from every output in one place."""
