"""VMs through libvirt (libvirt-python): KVM on ``qemu:///system`` in real
use, and through the same calls ESX (``esx://``), Hyper-V (``hyperv://``)
and libvirt's in-memory ``test:///default`` driver.

One connection per driver instance, opened on first use and kept: it is
what libvirt expects (and ``test:///default`` keeps its state per
connection). libvirt calls have no deadline of their own, so each runs under
``settings.timeout``; a connection that failed is dropped and reopened on
the next call, so a hypervisor that came back is reached again.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Literal, TypeVar

import libvirt
from pydantic import Field

from voe.domain.models import Host
from voe.drivers.base import DriverSettings, HypervisorDriver, VmSpec, VmState
from voe.drivers.hypervisor.session import BlockingSession
from voe.errors import DriverError

T = TypeVar("T")
# libvirt prints every error to stderr by default; here each becomes a DriverError
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

# virDomainState -> what voe needs to know
_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: VmState.RUNNING,
    libvirt.VIR_DOMAIN_RUNNING: VmState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: VmState.RUNNING,
    libvirt.VIR_DOMAIN_SHUTDOWN: VmState.RUNNING,  # shutting down: still running
    libvirt.VIR_DOMAIN_PAUSED: VmState.PAUSED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: VmState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTOFF: VmState.OFF,
    libvirt.VIR_DOMAIN_CRASHED: VmState.OFF,
}
_STATE_WORDS = {
    libvirt.VIR_DOMAIN_RUNNING: "running", libvirt.VIR_DOMAIN_BLOCKED: "idle", libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "in shutdown", libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
    libvirt.VIR_DOMAIN_CRASHED: "crashed", libvirt.VIR_DOMAIN_PMSUSPENDED: "pmsuspended",
}
_REASON_WORDS = {
    libvirt.VIR_DOMAIN_SHUTOFF: {
        libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN: "shutdown", libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED: "destroyed",
        libvirt.VIR_DOMAIN_SHUTOFF_CRASHED: "crashed", libvirt.VIR_DOMAIN_SHUTOFF_FAILED: "failed",
        libvirt.VIR_DOMAIN_SHUTOFF_DAEMON: "daemon",
    },
    libvirt.VIR_DOMAIN_RUNNING: {libvirt.VIR_DOMAIN_RUNNING_BOOTED: "booted"},
}
_BOOT_DEV = {"network": "network", "disk": "hd"}
_FROM_BOOT_DEV = {"network": "network", "hd": "disk"}
_KIB_PER_UNIT = {"b": 1 / 1024, "bytes": 1 / 1024, "k": 1, "KiB": 1, "M": 1024, "MiB": 1024, "G": 1024**2, "GiB": 1024**2}
CONSOLE_LOG_DIR = "/var/log/libvirt/qemu"
PROBE_CHANNEL = "io.voe.probe"  # the agent's network probe listens on this virtio-serial port (voe.agent.probe)
# errors that say "the hypervisor is not reachable now", worth a retry
_TRANSIENT_DOMAINS = {libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE}


class LibvirtSettings(DriverSettings):
    uri: str = Field(default="qemu:///system", description="libvirt connection URI, e.g. qemu+ssh://root@kvm1/system, "
                                                             "esx://root@esx1/?no_verify=1, hyperv://Administrator@hv1/")
    username: str = Field(default="", description="for URIs whose driver asks for credentials (esx, hyperv, tcp+sasl)")
    password: str = Field(default="", json_schema_extra={"secret": True})
    network: str = Field(default="default", description="libvirt network each NIC joins (unless bridge is set)")
    bridge: str | None = Field(default=None, description="host bridge each NIC joins instead of a libvirt network")
    bridge_type: Literal["linux", "openvswitch"] = Field(
        default="linux", description="openvswitch: each NIC's frames are tagged with its VLAN by OVS")
    domain_type: str = Field(default="auto", description="<domain type=...>: kvm, qemu, vmware (esx), hyperv; auto: "
                                                         "kvm where the host offers it, else what it offers")
    nic_model: str = "virtio"
    offloads: bool = Field(default=True, description="virtio NICs' checksum and segmentation offloads; off for a "
                                                     "switch that forwards frames as the guest wrote them (OVS's "
                                                     "userspace datapath on taps)")


class LibvirtHypervisor(HypervisorDriver):
    Settings = LibvirtSettings

    def __init__(self, device: str, settings: LibvirtSettings):
        super().__init__(device, settings)
        self._session = BlockingSession(device, self._connect, _close_quietly, settings.timeout, "libvirt")

    @classmethod
    def from_host(cls, host: Host) -> LibvirtHypervisor:
        hv = host.hypervisor
        return cls(host.name, LibvirtSettings(uri=hv.url, username=hv.username, password=hv.password or "",
                                              **hv.settings))

    # --- connection ----------------------------------------------------------

    def _connect(self) -> libvirt.virConnect:
        creds = [libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_PASSPHRASE]
        return libvirt.openAuth(self.settings.uri, [creds, self._answer_credentials, None], 0)

    def _answer_credentials(self, credentials: list[list], _data: object) -> int:
        """libvirt's auth callback: fill in what the URI's driver asks for."""
        for cred in credentials:
            if cred[0] == libvirt.VIR_CRED_AUTHNAME:
                cred[4] = self.settings.username
            elif cred[0] == libvirt.VIR_CRED_PASSPHRASE:
                cred[4] = self.settings.password
            else:
                return -1
        return 0

    def close(self) -> None:
        self._session.close()

    def _libvirt(self, operation: str, fn: Callable[[libvirt.virConnect], T]) -> T:
        """Run ``fn(connection)`` under the deadline; failures are typed."""
        try:
            return self._session.run(operation, fn)
        except libvirt.libvirtError as e:
            transient = e.get_error_domain() in _TRANSIENT_DOMAINS
            if transient:
                self._session.drop()
            raise DriverError(self.device, operation, e.get_error_message() or str(e), transient) from None

    def check(self) -> str:
        def look(c: libvirt.virConnect) -> str:
            return f"libvirt {c.getType()} at {c.getURI()} on {c.getHostname()}: {c.numOfDomains()} VMs running"
        return self._read("check", lambda: self._libvirt("check", look))

    # --- primitives ------------------------------------------------------------

    def _define(self, spec: VmSpec) -> None:
        """Define, or redefine keeping the VM's UUID (libvirt refuses a
        second VM of the same name with another UUID)."""
        def define(c: libvirt.virConnect) -> None:
            try:
                uuid = c.lookupByName(spec.name).UUIDString()
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
                uuid = None
            c.defineXML(domain_xml(spec, self.settings, uuid, self._domain_type(c)))
        self._libvirt(f"define VM {spec.name}", define)

    def _domain_type(self, c: libvirt.virConnect) -> str:
        if self.settings.domain_type != "auto":
            return self.settings.domain_type
        offered = [d.get("type", "") for d in ET.fromstring(c.getCapabilities()).findall("guest/arch/domain")]
        if not offered:
            raise libvirt.libvirtError("the host offers no domain type to run a VM with")
        return "kvm" if "kvm" in offered else offered[0]

    def _domain_op(self, name: str, operation: str, op: Callable[[libvirt.virDomain], object]) -> None:
        self._libvirt(f"{operation} VM {name}", lambda c: op(c.lookupByName(name)))

    def _start(self, name: str) -> None:
        self._domain_op(name, "start", lambda d: d.isActive() or d.create())

    def _shutdown(self, name: str) -> None:
        self._domain_op(name, "shut down", lambda d: d.isActive() and d.shutdown())

    def _destroy(self, name: str) -> None:
        self._domain_op(name, "destroy", lambda d: d.isActive() and d.destroy())

    def _undefine(self, name: str) -> None:
        self._domain_op(name, "undefine", lambda d: d.undefine())

    def _list(self) -> dict[str, VmState]:
        def states(c: libvirt.virConnect) -> dict[str, VmState]:
            return {d.name(): _STATES.get(d.state()[0], VmState.OFF) for d in c.listAllDomains()}
        return self._libvirt("list VMs", states)

    def _described(self, name: str) -> str:
        """libvirt's state and its reason, as virsh words them: "shut off
        (destroyed)", "running (booted)"."""
        def read(c: libvirt.virConnect) -> str:
            try:
                state, reason = c.lookupByName(name).state()
            except libvirt.libvirtError as e:
                if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return VmState.ABSENT.value
                raise
            word = _STATE_WORDS.get(state, "no state")
            because = _REASON_WORDS.get(state, {}).get(reason)
            return f"{word} ({because})" if because else word
        return self._libvirt(f"state of VM {name}", read)

    def _get_spec(self, name: str) -> VmSpec | None:
        def read(c: libvirt.virConnect) -> VmSpec | None:
            try:
                return spec_from_xml(c.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            except libvirt.libvirtError as e:
                if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return None
                raise
        return self._libvirt(f"read VM {name}", read)

    def spec(self, name: str) -> VmSpec | None:
        """The VM's persistent definition, as voe wrote it; None when absent."""
        return self._read(f"read VM {name}", lambda: self._get_spec(name))


def _close_quietly(conn: libvirt.virConnect) -> None:
    try:
        conn.close()
    except libvirt.libvirtError:
        pass


def domain_xml(spec: VmSpec, settings: LibvirtSettings, uuid: str | None = None, domain_type: str = "kvm") -> str:
    """The libvirt domain XML for one persona incarnation: vCPUs, memory, one
    NIC per persona MAC, booting from the network (or disk); its serial
    console logged on the host (``/var/log/libvirt/qemu/NAME-console.log``),
    a virtio-serial channel for the agent's network probe, and a virtio RNG
    fed by the host's ``/dev/urandom``: a guest without one waits at boot
    for entropy that its few devices give slowly."""
    dom = ET.Element("domain", type=domain_type)
    ET.SubElement(dom, "name").text = spec.name
    if uuid:
        ET.SubElement(dom, "uuid").text = uuid
    ET.SubElement(dom, "memory", unit="MiB").text = str(spec.memory_mib)
    ET.SubElement(dom, "vcpu").text = str(spec.vcpus)
    os_ = ET.SubElement(dom, "os")
    ET.SubElement(os_, "type", arch="x86_64").text = "hvm"
    ET.SubElement(os_, "boot", dev=_BOOT_DEV[spec.boot])
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"  # a crashed persona reads off: the reconciler decides
    devices = ET.SubElement(dom, "devices")
    for i, mac in enumerate(spec.macs):
        devices.append(_interface(settings, mac, spec.networks[i] if i < len(spec.networks) else None,
                                  spec.vlans[i] if i < len(spec.vlans) else None))
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "log", file=f"{CONSOLE_LOG_DIR}/{spec.name}-console.log", append="on")
    ET.SubElement(devices, "console", type="pty")
    channel = ET.SubElement(devices, "channel", type="unix")
    ET.SubElement(channel, "source", mode="bind")
    ET.SubElement(channel, "target", type="virtio", name=PROBE_CHANNEL)
    rng = ET.SubElement(devices, "rng", model="virtio")
    ET.SubElement(rng, "backend", model="random").text = "/dev/urandom"
    return ET.tostring(dom, encoding="unicode")


def _interface(settings: LibvirtSettings, mac: str, network: str | None, vlan: int | None) -> ET.Element:
    bridge = settings.bridge if network is None else None
    nic = ET.Element("interface", type="bridge" if bridge else "network")
    ET.SubElement(nic, "mac", address=mac)
    ET.SubElement(nic, "source", **({"bridge": bridge} if bridge else {"network": network or settings.network}))
    if settings.bridge_type == "openvswitch":
        ET.SubElement(nic, "virtualport", type="openvswitch")
        if vlan is not None:
            ET.SubElement(ET.SubElement(nic, "vlan"), "tag", id=str(vlan))
    ET.SubElement(nic, "model", type=settings.nic_model)
    if not settings.offloads and settings.nic_model == "virtio":
        driver = ET.SubElement(nic, "driver", name="qemu")
        off = {f: "off" for f in ("csum", "tso4", "tso6", "ecn", "ufo")}
        ET.SubElement(driver, "host", gso="off", **off)
        ET.SubElement(driver, "guest", **off)
    return nic


def spec_from_xml(xml: str) -> VmSpec:
    """Read back what ``domain_xml`` wrote (and what any libvirt VM has)."""
    dom = ET.fromstring(xml)
    memory = dom.find("memory")
    kib = int(memory.text or 0) * _KIB_PER_UNIT[memory.get("unit", "KiB")] if memory is not None else 0
    nics = dom.findall("devices/interface")
    boot = dom.find("os/boot")
    tags = [nic.find("vlan/tag") for nic in nics]
    return VmSpec(
        name=dom.findtext("name", ""),
        vcpus=int(dom.findtext("vcpu", "1")),
        memory_mib=int(kib // 1024),
        macs=tuple(nic.find("mac").get("address", "") for nic in nics if nic.find("mac") is not None),
        boot=_FROM_BOOT_DEV.get(boot.get("dev", "") if boot is not None else "", "disk"),  # type: ignore[arg-type]
        networks=tuple(src.get("network") or src.get("bridge") or "" for nic in nics
                       if (src := nic.find("source")) is not None),
        vlans=tuple(int(t.get("id", "0")) for t in tags if t is not None),
    )
