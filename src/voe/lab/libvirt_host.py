"""A hypervisor host of the KVM tier: this machine's own libvirtd (Debian's),
run by the lab as the host's OS, which voe's ``libvirt`` driver reaches on
``qemu:///system?socket=PATH`` exactly as it reaches a KVM host anywhere.

The daemon runs inside the lab's network namespace and in a mount namespace
of its own, where the host's state directory stands in for ``/etc/libvirt``,
``/run/libvirt``, ``/var/lib/libvirt``, ``/var/log/libvirt`` and
``/var/cache/libvirt``, and the lab's Open vSwitch for ``/run/openvswitch``:
several labs (and this machine's own libvirt) never share a domain, and the
VMs' taps are born where the lab's switches are. The host's virtual switch
is an OVS bridge (the inventory's ``settings.bridge``) that libvirt plugs
each VM NIC into with the VLAN voe's driver asked for; its uplink is a veth
cabled to the host's switch port, a trunk of every VLAN, so the lab switch
forwards exactly the VLANs voe configured on that port.

The host's power and OS are its lab machine's: power on from its disk starts
libvirtd; power off, an OS crash or a fence through its BMC kills every QEMU
and the daemon (its API refuses connections); a hang stops them all.
"""

from __future__ import annotations

import os
import shlex
import signal
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

from voe.domain.models import HypervisorSpec
from voe.lab.children import Children
from voe.lab.kvm import PROBE_PATIENCE, PROBE_PORT_NAME, ConsoleReader, KvmError, ask_probe, probe_console
from voe.lab.machine import Boot, Machine
from voe.lab.netns import LabNetwork
from voe.lab.ovs import OvsPlane, SwitchBridge

SOCKET_NAME = "libvirt-sock"
# the daemon's configuration: no authentication on its own socket, QEMU as
# root without relabelling (the lab's files are root's), guests' consoles
# written by QEMU itself (no virtlogd)
LIBVIRTD_CONF = """unix_sock_dir = "{socket_dir}"
unix_sock_group = "root"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:stderr"
"""
QEMU_CONF = """user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
stdio_handler = "file"
"""
STANDS_IN = {"etc": "/etc/libvirt", "run": "/run/libvirt", "lib": "/var/lib/libvirt", "log": "/var/log/libvirt",
             "cache": "/var/cache/libvirt"}


class LibvirtHostError(RuntimeError):
    """The inventory's hypervisor cannot be a lab libvirt host: what to change."""


def socket_path(spec: HypervisorSpec) -> Path:
    """Where the inventory's URI says the daemon listens."""
    found = parse_qs(urlsplit(spec.url).query).get("socket", [])
    if not found or Path(found[0]).name != SOCKET_NAME:
        raise LibvirtHostError(f"hypervisor.url {spec.url!r}: a lab libvirt host listens where its URI says: "
                               f"give it as qemu:///system?socket=/SOME/DIR/{SOCKET_NAME}")
    return Path(found[0])


class LibvirtVm:
    """One domain of the host as the lab's truth sees it: its QEMU process
    (libvirt's pid file), and who the guest was booted as (its console)."""

    kind = "vm"

    def __init__(self, name: str, host: LibvirtHost):
        self.name = name
        self.host = host
        self._console = ConsoleReader()
        self._probe_lock = threading.Lock()  # one request at a time on the channel, as on a KVM server's port

    @property
    def machine(self) -> LibvirtVm:
        """The lab keeps a VM and the machine it runs on apart; a domain is both."""
        return self

    @property
    def pid(self) -> int | None:
        try:
            pid = int((self.host.root / "run" / "qemu" / f"{self.name}.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}").exists() and _state(pid) != "Z" else None

    @property
    def powered(self) -> bool:
        return self.pid is not None

    @property
    def console_log(self) -> Path:
        """What voe's driver asks libvirt to log the serial console to."""
        return self.host.root / "log" / "qemu" / f"{self.name}-console.log"

    @property
    def last_boot(self) -> Boot | None:
        return self._console.boot(self.console_log) if self.powered else None

    def observed(self) -> tuple[str, int | None, int, str] | None:
        pid = self.pid  # read once: the truth asks many times a second
        boot = self._console.boot(self.console_log) if pid is not None else None
        if pid is None or boot is None or boot.persona is None:
            return None
        return boot.persona, boot.generation, pid, "frozen" if _state(pid) == "T" else "running"

    def as_dict(self) -> dict:
        pid = self.pid
        return {"name": self.name, "state": "off" if pid is None else "paused" if _state(pid) == "T" else "running"}

    def power_off(self) -> None:
        """A VM goes with its host (``LibvirtHost.down``) or by libvirt."""

    def probe(self, request: dict) -> dict:
        """One request to the guest's network probe, over the virtio-serial
        channel voe's driver gives each VM. libvirt's status of the running
        domain names the channel's socket and says whether the guest has
        opened its end (QEMU's VSERPORT_CHANGE): a request waits for that,
        so a probe that never starts reads as such. The socket lies too
        deep in the host's state directory for a socket address: it is
        reached through its directory's descriptor."""
        port = self._probe_port(waiting=True)
        if port is None:
            return ask_probe(self.name, None, request, self.console_log)
        socket_file, opened = port
        if not opened:
            raise KvmError(f"{self.name}: the guest did not open its network probe's port ({PROBE_PORT_NAME}) "
                           f"in {PROBE_PATIENCE:.0f} s: voe-probe.service is not running in it; "
                           f"{probe_console(self.console_log)}")
        directory = os.open(socket_file.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with self._probe_lock:
                return ask_probe(self.name, Path(f"/proc/self/fd/{directory}/{socket_file.name}"), request,
                                 self.console_log)
        except KvmError as e:
            now = self._probe_port(waiting=False)
            raise KvmError(f"{e} (the guest's end of the port is now "
                           f"{'gone' if now is None else 'open' if now[1] else 'closed'})") from None
        finally:
            os.close(directory)

    def _probe_port(self, waiting: bool) -> tuple[Path, bool] | None:
        """The probe channel's socket on this machine and whether the guest
        has its end open, from libvirt's status of the running domain;
        waiting up to ``PROBE_PATIENCE`` for the guest to open it. None
        when the domain does not run or has no such channel."""
        deadline = time.monotonic() + (PROBE_PATIENCE if waiting else 0.0)
        while True:
            try:
                status = (self.host.root / "run" / "qemu" / f"{self.name}.xml").read_text()
            except OSError:
                return None
            channel = probe_channel(status)
            if channel is None:
                return None
            path, opened = channel
            if opened or time.monotonic() >= deadline:
                return host_path(self.host.root, path), opened
            time.sleep(0.2)


def host_path(root: Path, path: str) -> Path:
    """A path as a host's libvirtd sees it in its mount namespace, in the
    host's state directory ``root`` on this machine."""
    for name, target in STANDS_IN.items():
        if path.startswith(target + "/"):
            return root / name / path.removeprefix(target + "/")
    return Path(path)


def probe_channel(status_xml: str) -> tuple[str, bool] | None:
    """The socket path (as libvirtd names it) of the probe's virtio-serial
    channel in a domain's status XML, and whether the guest has opened its
    end: libvirt keeps the ``state`` of a virtio channel from QEMU's
    events. A QEMU that reports no state counts as opened."""
    for channel in ElementTree.fromstring(status_xml).iter("channel"):
        target, source = channel.find("target"), channel.find("source")
        if target is not None and source is not None and target.get("name") == PROBE_PORT_NAME:
            return source.get("path", ""), target.get("state", "connected") == "connected"
    return None


class LibvirtHost:
    """libvirtd of one hypervisor host, its bridge and its uplink."""

    def __init__(self, machine: Machine, spec: HypervisorSpec, network: LabNetwork, plane: OvsPlane, root: Path,
                 uplink: tuple[SwitchBridge, int], index: int):
        self.host = machine
        self.socket = socket_path(spec)
        self.bridge = spec.settings.get("bridge")
        if not self.bridge or spec.settings.get("bridge_type") != "openvswitch":
            raise LibvirtHostError(f"{machine.name}: hypervisor.settings needs bridge: NAME and bridge_type: "
                                   "openvswitch, the lab host's virtual switch its VMs' NICs join")
        self.network = network
        self.plane = plane
        self.root = root
        self.children = Children(network, root)
        self.up = False
        self._vms: dict[str, LibvirtVm] = {}
        plane.vsctl("add-br", self.bridge, "--", "set", "bridge", self.bridge, "datapath_type=netdev")
        switch_end, host_end = f"hv{index}sw", f"hv{index}up"
        network.add_veth(switch_end, host_end)
        plane.vsctl("add-port", self.bridge, host_end, "--", "set", "port", host_end, "vlan_mode=trunk")
        uplink[0].attach(uplink[1], switch_end)

    @property
    def vms(self) -> dict[str, LibvirtVm]:
        """The host's defined domains (libvirt keeps each one's XML)."""
        for xml in (self.root / "etc" / "qemu").glob("*.xml"):
            self._vms.setdefault(xml.stem, LibvirtVm(xml.stem, self))
        return self._vms

    # --- the host's OS ------------------------------------------------------------

    def boot(self) -> None:
        """The host's OS came up: its libvirtd starts, its domains defined
        but off, as after a real host's reboot."""
        if self.up:
            return
        for name in STANDS_IN:  # each with its qemu directory, as Debian's package leaves them
            (self.root / name / "qemu").mkdir(parents=True, exist_ok=True)
        for stale in (self.root / "run" / "qemu").glob("*"):  # what the last life left: its QEMUs are gone
            stale.unlink()
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        (self.root / "etc" / "libvirtd.conf").write_text(LIBVIRTD_CONF.format(socket_dir=self.socket.parent))
        (self.root / "etc" / "qemu.conf").write_text(QEMU_CONF)
        binds = [(self.root / name, target) for name, target in STANDS_IN.items()] + [(self.plane.run_dir,
                                                                                     "/run/openvswitch")]
        script = "; ".join(f"mkdir -p {t} && mount --bind {shlex.quote(str(s))} {t}" for s, t in binds)
        script += f"; exec libvirtd --config /etc/libvirt/libvirtd.conf --pid-file {shlex.quote(str(self.root / 'libvirtd.pid'))}"
        self.children.start("libvirtd", ["unshare", "--mount", "--propagation", "private", "sh", "-ec", script],
                            self.socket.exists, self.root / "libvirtd.log")
        self.up = True

    def down(self) -> None:
        """Power gone or the OS crashed: every QEMU and the daemon die at once."""
        for vm in list(self.vms.values()):  # every defined domain, seen by the lab before or not
            pid = vm.pid
            if pid is not None:
                _signal(pid, signal.SIGKILL)
        self.children.stop()
        self.socket.unlink(missing_ok=True)
        self.up = False

    def hang(self, frozen: bool) -> None:
        """The host's OS stops (or continues): its daemon and every VM with it."""
        pids = [p.pid for p in self.children.procs] + [vm.pid for vm in self.vms.values() if vm.pid is not None]
        for pid in pids:
            _signal(pid, signal.SIGSTOP if frozen else signal.SIGCONT)


def _state(pid: int) -> str:
    """A process's state letter (R, S, T, Z, ...), or "" when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    if sig == signal.SIGKILL:
        deadline = time.monotonic() + 5
        while _state(pid) not in ("", "Z") and time.monotonic() < deadline:
            time.sleep(0.02)
