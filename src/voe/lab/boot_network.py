"""The services of the lab's network that a datacenter runs on its own
servers, run here as the real programs inside the lab's namespace
(``voe.lab.netns``), listening on its addresses:

* dnsmasq, configured by voe's own generator (``voe.drivers.boot.dnsmasq``),
  on each boot network's segment: DHCP for exactly the MACs the controller names in its ``dhcp-hosts``
  directory, each with its persona's boot address, and the chain from
  iPXE to the controller's ``/boot/ipxe/{mac}``. dnsmasq reads a file new
  in that directory on its own but only adds what it reads: a MAC the
  controller names again (ignored once its persona left, answered when
  the next one boots there) would keep its first entry. And a persona's
  address moves with it from MAC to MAC, which dnsmasq refuses while the
  last MAC's lease runs. So the lab, as dnsmasq's keeper, watches the
  directory: a MAC turned away has its lease released (``dhcp_release``,
  as OpenStack's DHCP agents do), and dnsmasq is told to reread it all
  (SIGHUP);
* nfs-ganesha, for a storage host whose driver is ``ganesha``, with its
  DBus export manager on the bus its driver settings name;
* tgtd, for a storage host whose driver is ``tgt``, on its control port.

A storage host's service listens on the address it ``serves`` in the lab
network (the gateway's, or one of its own that the lab adds to the
bridge), as a filer or an array has its own.

Each is a child of the lab and goes with it.
"""

from __future__ import annotations

import ipaddress
import shutil
import signal
import subprocess
import threading
from pathlib import Path

from voe.domain.models import Host
from voe.drivers.boot.dnsmasq import DhcpBoot, render
from voe.lab.children import Children
from voe.lab.netns import LabNetwork

BUS_POLICY = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>{address}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="root"/><allow own="*"/><allow send_destination="*"/>
<allow receive_sender="*"/></policy></busconfig>
"""
HOSTS_POLL = 0.1  # seconds between two looks at the controller's dhcp-hosts directory


class ServiceError(RuntimeError):
    """A service of the lab's network did not start: which, and its log's end."""


class BootNetworkServices:
    def __init__(self, network: LabNetwork, state_dir: Path):
        self.network = network
        self.state_dir = state_dir
        self.children = Children(network, state_dir)
        self._stopping = threading.Event()
        self._watch: threading.Thread | None = None

    # --- dnsmasq ------------------------------------------------------------------------

    @property
    def dnsmasq_log(self) -> Path:
        return self.state_dir / "dnsmasq.log"

    def start_dhcp(self, boot_url: str, hosts_dir: Path) -> None:
        _need("dnsmasq", "dhcp_release")
        tftp = self.state_dir / "tftp"
        tftp.mkdir(parents=True, exist_ok=True)
        hosts_dir.mkdir(parents=True, exist_ok=True)
        conf = self.state_dir / "dnsmasq.conf"
        segments = self.network.segments
        conf.write_text(render(DhcpBoot(boot_url, interfaces=tuple(s.bridge for s in segments),
                                        static_subnets=tuple(str(s.subnet) for s in segments),
                                        ra_prefixes=tuple(str(s.ipv6_prefix) for s in segments),
                                        hosts_dir=str(hosts_dir), known_only=True, tftp_root=str(tftp)))
                        + f"dhcp-leasefile={self.state_dir / 'dnsmasq.leases'}\n")
        proc = self.children.start("dnsmasq", ["dnsmasq", "--keep-in-foreground", f"--conf-file={conf}", "--user=root",
                                                "--group=root", f"--log-facility={self.dnsmasq_log}",
                                                f"--pid-file={self.state_dir / 'dnsmasq.pid'}"],
                                   lambda: "TFTP root is" in _read(self.dnsmasq_log), self.dnsmasq_log)
        self._watch = threading.Thread(target=self._reload_on_change, args=(proc, hosts_dir), name="lab-dhcp-hosts",
                                       daemon=True)
        self._watch.start()

    def _reload_on_change(self, dnsmasq: subprocess.Popen, hosts_dir: Path) -> None:
        seen = _listing(hosts_dir)
        while not self._stopping.wait(HOSTS_POLL):
            now = _listing(hosts_dir)
            if now != seen and dnsmasq.poll() is None:
                changed = [name for name in now if now[name] != seen.get(name)]
                turned_away = {line.split(",")[0].lower() for name in changed
                               if (line := _read(hosts_dir / name).strip()).endswith(",ignore")}
                self._release(turned_away)
                dnsmasq.send_signal(signal.SIGHUP)
            seen = now

    def _release(self, macs: set[str]) -> None:
        """The leases of ``macs`` end, as if their machines had said so."""
        for line in _read(self.state_dir / "dnsmasq.leases").splitlines():
            fields = line.split()  # expiry MAC address hostname client-id
            if len(fields) >= 3 and fields[1].lower() in macs:
                address = ipaddress.ip_address(fields[2])
                segment = next((s for s in self.network.segments if address in s.subnet), None)
                if segment is not None:
                    subprocess.run(self.network.command(["dhcp_release", segment.bridge, fields[2], fields[1]]),
                                   capture_output=True, timeout=10)

    # --- storage --------------------------------------------------------------------------

    def start_storage(self, host: Host) -> None:
        spec = host.storage
        if spec is None:
            return
        address = next((a for a in spec.serves if ipaddress.ip_address(a) in self.network.subnet), None)
        if address is None:
            raise ServiceError(f"storage host {host.name} serves {', '.join(spec.serves)}; in a lab with KVM machines "
                               f"it serves an address of the lab network {self.network.subnet} (its gateway "
                               f"{self.network.gateway}, say): add one to serves")
        self.network.add_address(address)
        if spec.driver == "ganesha":
            self._start_ganesha(host.name, address, spec.settings)
        elif spec.driver == "tgt":
            self._start_tgt(host.name, address, spec.settings)

    def _start_ganesha(self, host: str, address: str, settings: dict) -> None:
        _need("ganesha.nfsd", "dbus-daemon")
        bus_address = settings.get("dbus_address")
        if not bus_address or not bus_address.startswith("unix:path="):
            raise ServiceError(f"storage host {host}: the lab runs ganesha's DBus at settings.dbus_address, "
                               "which must be unix:path=/some/socket")
        sock = Path(bus_address.removeprefix("unix:path="))
        sock.parent.mkdir(parents=True, exist_ok=True)
        sock.unlink(missing_ok=True)
        bus_conf = self.state_dir / f"{host}-bus.conf"
        bus_conf.write_text(BUS_POLICY.format(address=bus_address))
        self.children.start(f"{host} DBus", ["dbus-daemon", "--nofork", f"--config-file={bus_conf}"], sock.exists,
                            inside=False)
        exports = Path(settings["export_dir"])
        exports.mkdir(parents=True, exist_ok=True)
        for stale in exports.glob("voe-*.conf"):
            stale.unlink()  # a lab's ganesha starts with no export: voe grants them
        # a root file system's lease outlives a slow guest's late renewal: its
        # recovery would wait for an ID-mapping helper on the very root it
        # recovers; numeric owners need no ID mapping at all
        conf = self.state_dir / f"{host}-ganesha.conf"
        conf.write_text(f"""NFS_CORE_PARAM {{ NFS_Port = 2049; Protocols = 4; Bind_addr = {address};
    Enable_NLM = false; Enable_RQUOTA = false; }}
NFSV4 {{ RecoveryBackend = fs; Graceless = true; Lease_Lifetime = 60; Only_Numeric_Owners = true; }}
NFS_KRB5 {{ Active_krb5 = false; }}
%dir "{exports}"
""")
        log = self.state_dir / f"{host}-ganesha.log"
        pid = self.state_dir / f"{host}-ganesha.pid"
        self.children.start(f"{host} ganesha", ["env", f"DBUS_SYSTEM_BUS_ADDRESS={bus_address}", "ganesha.nfsd", "-F",
                                                "-f", str(conf), "-L", str(log), "-p", str(pid)],
                            lambda: "NFS SERVER INITIALIZED" in _read(log), log)

    def _start_tgt(self, host: str, address: str, settings: dict) -> None:
        _need("tgtd")
        port = settings.get("control_port")
        log = self.state_dir / f"{host}-tgtd.log"
        argv = ["tgtd", "-f", *(["-C", str(port)] if port is not None else []),
                "--iscsi", f"portal={address}:3260"]
        self.children.start(f"{host} tgtd", argv, Path(f"/var/run/tgtd/socket.{port or 0}").exists, log)

    def stop(self) -> None:
        self._stopping.set()
        if self._watch is not None:
            self._watch.join(2)
        self.children.stop()


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise ServiceError(f"{', '.join(missing)} not installed (scripts/setup.sh installs them)")


def _listing(directory: Path) -> dict[str, tuple[int, int]]:
    """Each visible file's (mtime, size): what changes when one is written."""
    out = {}
    for f in directory.iterdir():
        if not f.name.startswith("."):
            try:
                st = f.stat()
            except FileNotFoundError:
                continue
            out[f.name] = (st.st_mtime_ns, st.st_size)
    return out


def _read(path: Path | None) -> str:
    try:
        return path.read_text(errors="replace") if path else ""
    except FileNotFoundError:
        return ""
