"""The lab switches' forwarding plane for real machines: Open vSwitch's
userspace datapath (``datapath_type=netdev``, which needs no kernel module),
run by the lab inside its network namespace. Each lab switch is one OVS
bridge; each of its ports that has something cabled (a KVM machine's tap)
is one OVS port, and the lab's own services (dnsmasq, the storage servers,
the controllers' forwarders, on the namespace's Linux bridges) join every
switch through an access port in each boot network's VLAN.

A bridge forwards exactly as its switch's state says (``SwitchState``, which
the switch's SNMP agent reads and writes), mapped onto OVS's port columns:

* the PVID, where the port is an untagged member of it, is the port's
  ``tag``: untagged frames in, that VLAN's frames out untagged;
* the VLANs whose egress list holds the port tagged are its ``trunks``
  (``vlan_mode`` ``access``, ``native-untagged`` or ``trunk`` as the port
  has one, both or only tagged VLANs); a tagged frame of any other VLAN
  is dropped on the way in, as by 802.1Q ingress filtering;
* a port that is shut, has no link, carries no VLAN, or whose switch is
  down forwards nothing: OpenFlow's ``no-receive`` and ``no-forward``;
* OVS's normal action learns MACs per VLAN and floods unknown ones within it.

A switch's bridge is programmed before the write that changed its state
returns (``SwitchState.watch``): ``ovs-vsctl`` waits for ovs-vswitchd to
apply a change, so what a manager reads back over SNMP is what frames see.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from voe.lab.children import Children
from voe.lab.netns import LabNetwork
from voe.lab.switch_state import PortView, SwitchState

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
APPLY_PATIENCE = 10  # seconds for ovs-vswitchd to apply one change


class OvsError(RuntimeError):
    """Open vSwitch did not start or did not take a change: the command and its answer."""


@dataclass(frozen=True)
class Forwarding:
    """What one OVS port is set to."""

    vlan_mode: str  # access | native-untagged | trunk
    tag: int | None
    trunks: tuple[int, ...]
    forwards: bool

    def columns(self) -> list[str]:
        """``ovs-vsctl set port`` arguments."""
        return [f"vlan_mode={self.vlan_mode}", f"tag={self.tag if self.tag is not None else '[]'}",
                f"trunks={','.join(map(str, self.trunks)) or '[]'}"]


def forwarding(view: PortView) -> Forwarding:
    """The OVS port settings that forward as a switch port in ``view``."""
    native = view.pvid if view.pvid in view.untagged else None
    trunks = tuple(sorted(view.tagged - {native}))
    forwards = view.oper_up and (native is not None or bool(trunks))
    if native is not None:
        return Forwarding("native-untagged" if trunks else "access", native, trunks, forwards)
    return Forwarding("trunk", None, trunks, forwards)


class OvsPlane:
    """ovsdb-server and ovs-vswitchd of one lab, inside its namespace, and
    a bridge per lab switch."""

    def __init__(self, network: LabNetwork, state_dir: Path):
        self.network = network
        self.state_dir = state_dir
        self.run_dir = Path("/run") / f"{network.name}-ovs"  # short: OVS's sockets live here
        self.children = Children(network, state_dir)
        self.bridges: dict[str, SwitchBridge] = {}

    @property
    def db(self) -> str:
        return f"unix:{self.run_dir / 'db.sock'}"

    def start(self) -> None:
        missing = [t for t in ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovsdb-tool", "ethtool")
                   if shutil.which(t) is None]
        if missing or not SCHEMA.exists():
            raise OvsError(f"{', '.join(missing) or SCHEMA} not installed (scripts/setup.sh installs openvswitch-switch "
                           "and ethtool)")
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(parents=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        conf = self.run_dir / "conf.db"
        _run(["ovsdb-tool", "create", str(conf), str(SCHEMA)])
        env = ["env", f"OVS_RUNDIR={self.run_dir}", f"OVS_DBDIR={self.run_dir}", f"OVS_LOGDIR={self.state_dir}"]
        self._daemon(env, "ovsdb-server", [str(conf), f"--remote=p{self.db}"],
                     lambda: (self.run_dir / "db.sock").exists())
        self.vsctl("--no-wait", "init")
        self._daemon(env, "ovs-vswitchd", [self.db, "--disable-system-route"],
                     lambda: any(self.run_dir.glob("ovs-vswitchd.*.ctl")))

    def _daemon(self, env: list[str], name: str, args: list[str], ready) -> None:
        log = self.state_dir / f"{name}.log"  # its own log, and what it prints before it opens it
        self.children.start(name, [*env, name, *args, "--no-chdir", f"--log-file={log}", "-vconsole:off"], ready, log)

    def vsctl(self, *args: str) -> str:
        return _run(["ovs-vsctl", f"--db={self.db}", f"--timeout={APPLY_PATIENCE}", *args])

    def ofctl(self, bridge: str, *args: str) -> str:
        return _run(["ovs-ofctl", args[0], f"unix:{self.run_dir / bridge}.mgmt", *args[1:]])

    def appctl(self, *args: str) -> str:
        target = next(self.run_dir.glob("ovs-vswitchd.*.ctl"))
        return _run(["ovs-appctl", "-t", str(target), *args])

    def add_switch(self, state: SwitchState) -> SwitchBridge:
        bridge = SwitchBridge(self, state, f"labsw{len(self.bridges)}")
        self.bridges[state.name] = bridge
        return bridge

    def stop(self) -> None:
        self.children.stop()
        shutil.rmtree(self.run_dir, ignore_errors=True)


class SwitchBridge:
    """One lab switch's OVS bridge, following its state."""

    def __init__(self, plane: OvsPlane, state: SwitchState, name: str):
        self.plane = plane
        self.state = state
        self.name = name
        self.ports: dict[str, int] = {}  # OVS port -> switch port number
        self.service_ports: dict[str, int] = {}  # the lab's services: OVS port -> its access VLAN
        self.applied: dict[str, Forwarding] = {}
        plane.vsctl("add-br", name, "--", "set", "bridge", name, "datapath_type=netdev",
                    f"external_ids:voe-lab-switch={state.name}")
        state.watch(lambda _: self.apply())

    def attach(self, number: int, interface: str) -> None:
        """``interface`` (in the lab's namespace) is cabled to switch port ``number``."""
        with self.state.lock:
            self._add(interface, forwarding(self.state.view(number)))
            self.ports[interface] = number

    def attach_services(self, interface: str, vlan: int) -> None:
        """One of the lab's service networks reaches this switch through
        ``interface``, an access port in ``vlan``."""
        with self.state.lock:
            self._add(interface, self._service_forwarding(vlan))
            self.service_ports[interface] = vlan

    def _service_forwarding(self, vlan: int) -> Forwarding:
        return Forwarding("access", vlan, (), not self.state.down)

    def _add(self, interface: str, want: Forwarding) -> None:
        self.plane.vsctl("add-port", self.name, interface, "--", "set", "port", interface, *want.columns())
        if not want.forwards:
            self._set_forwarding(interface, False)
        self.applied[interface] = want

    def desired(self) -> dict[str, Forwarding]:
        with self.state.lock:
            out = {interface: forwarding(self.state.view(number)) for interface, number in self.ports.items()}
            out.update({interface: self._service_forwarding(vlan) for interface, vlan in self.service_ports.items()})
            return out

    def apply(self) -> None:
        """Bring the bridge to the switch's state: ports that stop forwarding
        first, then the VLAN columns (one transaction), then ports that start."""
        changed = {i: w for i, w in self.desired().items() if w != self.applied[i]}
        for interface, w in changed.items():
            if not w.forwards and self.applied[interface].forwards:
                self._set_forwarding(interface, False)
        columns = [arg for i, w in changed.items() if w.columns() != self.applied[i].columns()
                   for arg in ("--", "set", "port", i, *w.columns())]
        if columns:
            self.plane.vsctl(*columns)
        for interface, w in changed.items():
            if w.forwards and not self.applied[interface].forwards:
                self._set_forwarding(interface, True)
        self.applied.update(changed)
        if changed and self.state.down:  # a switch that went down forgets what it learned
            self.plane.appctl("fdb/flush", self.name)

    def _set_forwarding(self, interface: str, on: bool) -> None:
        for config in (("receive", "forward") if on else ("no-receive", "no-forward")):
            self.plane.ofctl(self.name, "mod-port", interface, config)


def _run(argv: list[str]) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=APPLY_PATIENCE + 5)
    if r.returncode != 0:
        raise OvsError(f"{' '.join(argv)}: {r.stderr.strip() or r.returncode}")
    return r.stdout
