"""The emulated datacenter of one inventory file: a BMC per host, an SNMP
agent per switch, a hypervisor API per hypervisor host, machines that boot
from the controller, faults, ground truth and the data plane.

A host's machine is a process (its persona's agent) or, with
``machine: {backend: kvm}`` (or ``machines="kvm"``), a QEMU virtual machine
that network-boots for real on the lab's own network (``voe.lab.netns``),
where the lab runs dnsmasq and the storage hosts' nfs-ganesha and tgtd
(``voe.lab.boot_network``) and forwards the controllers' ports, and whose
switches forward its frames by their VLAN state (``voe.lab.ovs``)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from voe.domain.inventory import Inventory
from voe.domain.models import Host, LabMachine
from voe.lab import dataplane, netfiles, probes
from voe.lab.bmc import BmcLoop, LabBmc, close_bmc, open_bmc
from voe.lab.boot_network import BootNetworkServices
from voe.lab.hypervisor import Hypervisor
from voe.lab.json_api import JsonApi
from voe.lab.kvm import EMULATED_CPUS, KvmMachine, KvmNic, accelerator
from voe.lab.libvirt_host import LibvirtHost, LibvirtHostError, LibvirtVm
from voe.lab.machine import ControllerLink, Machine, ProcessOS
from voe.lab.netns import LabNetwork
from voe.lab.ovs import OvsPlane
from voe.lab.redfish import RedfishEmulator
from voe.lab.relay import Relay
from voe.lab.storage import LabStorage
from voe.lab.switch_emulator import SnmpLoop, SwitchEmulator
from voe.lab.truth import IncarnationTruth, InvariantChecker
from voe.lab.vsphere_host import VsphereHost
from voe.lab.zygote import AgentZygote

log = logging.getLogger("voe.lab")

LINK_FOLLOW_INTERVAL = 0.1  # seconds between two reads of the switch ports KVM machines' links follow
HOST_FAULTS = ("power-loss", "hang", "resume", "os-crash", "partition", "heal", "bmc-down", "bmc-up", "repair")
SWITCH_FAULTS = ("down", "up")


class LabError(Exception):
    pass


class Lab:
    def __init__(self, inv: Inventory, controller_url: str, state_dir: Path, machines: str = "process",
                 agent_urls: str = "", dhcp_hosts: Path | None = None, subnet: str = "10.77.0.0/24"):
        """``machines``: the backend of hosts that do not name one;
        ``agent_urls``: the controllers' agent URLs (their ports are
        forwarded into the lab's network with the boot ports);
        ``dhcp_hosts``: the controller's ``dhcp-hosts`` directory, which
        the lab's dnsmasq answers from; ``subnet``: the lab's network."""
        self.inv = inv
        self.controller_url = controller_url
        self.state_dir = state_dir
        self.machines = machines
        self.agent_urls = agent_urls
        self.dhcp_hosts = dhcp_hosts
        self.network: LabNetwork | None = None
        self.services: BootNetworkServices | None = None
        self.plane: OvsPlane | None = None
        self.accel = "tcg"  # how KVM machines run: chosen as the lab's network comes up (``accelerator``)
        if any(self._kvm(h) or _libvirt(h) for h in inv.hosts):
            self.network = LabNetwork(f"voe-lab-{os.getpid()}", subnet)
        self.agent = AgentZygote()
        # network boots in progress at once: a level of a group start powers on
        # hundreds of machines together, and a thread each (an HTTP fetch and a
        # fork) would starve the BMCs' I/O loop of the interpreter
        self.boots = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lab-boot")
        self.loop = SnmpLoop()
        self.bmc_loop: BmcLoop | None = None
        self.switches: dict[str, SwitchEmulator] = {}
        self.hosts: dict[str, Machine] = {}
        self.hypervisors: dict[str, Hypervisor | VsphereHost | LibvirtHost] = {}
        self.storages: dict[str, tuple[LabStorage, JsonApi]] = {}
        self.bmcs: dict[str, LabBmc | RedfishEmulator | None] = {}
        self.relays: dict[str, Relay] = {}
        self.cut: set[str] = set()  # machines partitioned from the controller
        self._stopping = threading.Event()
        self._links_thread = threading.Thread(target=self._follow_ports, name="lab-links", daemon=True)
        self.checker = InvariantChecker(self.truth)

    # --- bring-up -------------------------------------------------------------

    def up(self) -> None:
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        self.state_dir.mkdir(parents=True)
        cabled: dict[str, set[str]] = {}
        for h in self.inv.hosts:
            for n in h.nics:
                if n.switch:
                    cabled.setdefault(n.switch, set()).add(n.port)
        for sw in self.inv.switches:
            s = sw.settings
            em = SwitchEmulator(sw, sw.address, int(s.get("port", 161)), s.get("community", "private"),
                                s.get("v3"), cabled.get(sw.name, set()), loop=self.loop)
            em.start()
            self.switches[sw.name] = em
        if self.network is not None:
            self._network_up()
        for h in self.inv.hosts:
            self._add_host(h)
        self.bmc_loop = BmcLoop()  # after the first BMC: pyghmi's IO thread must exist first
        for name in [*self.hypervisors, *self.storages]:
            self.hosts[name].set_boot("disk", True)
            self.hosts[name].power_on()  # hypervisor and storage hosts run, as in any datacenter
        self.checker.start()
        if self.network is not None:
            self._links_thread.start()

    def _kvm(self, h: Host) -> bool:
        if h.machine is not None:
            return h.machine.backend == "kvm"
        return self.machines == "kvm" and h.hypervisor is None and h.storage is None

    def _network_up(self) -> None:
        """The namespace, its services, and the controllers' ports in it."""
        assert self.network is not None
        if self.dhcp_hosts is None:
            raise LabError("a lab with KVM machines needs the controller's dhcp-hosts directory (--dhcp-hosts)")
        self.accel, why = accelerator()
        if why:
            log.warning("KVM machines run under QEMU's software emulation (TCG), many times slower and with %d vCPU "
                        "each: %s", EMULATED_CPUS, why)
        gateway = ipaddress.ip_address(self.network.gateway)
        self.network.create(next((n.vlan for n in self.inv.networks if gateway in n.subnet), 1))
        self.services = BootNetworkServices(self.network, self.state_dir)
        self.plane = OvsPlane(self.network, self.state_dir / "ovs")
        try:
            self.plane.start()
            self._add_segments()
            for i, em in enumerate(self.switches.values()):
                bridge = self.plane.add_switch(em.state)
                for k, segment in enumerate(self.network.segments):
                    bridge.attach_services(self.network.add_uplink(f"svc{i}n{k}", segment.bridge), segment.vlan)
            urls = [u for u in f"{self.controller_url},{self.agent_urls}".split(",") if u.strip()]
            for port in sorted({urlsplit(u.strip()).port or 80 for u in urls}):
                asyncio.run_coroutine_threadsafe(self.network.forward(port), self.loop.loop).result(10)
            boot = urlsplit(self.controller_url.split(",")[0].strip())
            self.services.start_dhcp(f"http://{self.network.gateway}:{boot.port or 80}", self.dhcp_hosts)
            for h in self.inv.hosts:
                if h.storage is not None and h.storage.driver in ("ganesha", "tgt"):
                    self.services.start_storage(h)
        except BaseException:  # what started goes again: a lab that did not come up leaves nothing running
            asyncio.run_coroutine_threadsafe(self.network.close_forwarders(), self.loop.loop).result(5)
            self.services.stop()
            self.plane.stop()
            self.network.delete()
            raise

    def _add_segments(self) -> None:
        """Beside the lab network's own (on the VLAN of the inventory's
        network that holds its gateway, else the default VLAN), a segment
        for each other network of the inventory with a gateway, whose
        machines boot through that gateway."""
        assert self.network is not None
        gateway = ipaddress.ip_address(self.network.gateway)
        for n in self.inv.networks:
            if n.gateway is not None and n.gateway.version == 4 and gateway not in n.subnet:
                self.network.add_segment(n.vlan, n.subnet, str(n.gateway))

    def _add_kvm_host(self, h: Host) -> KvmMachine:
        assert self.network is not None
        assert self.plane is not None
        index = len(self.hosts)
        nics = []
        for i, n in enumerate(n for n in h.nics if n.switch):
            tap = self.network.add_tap(f"vt{index}n{i}")
            self.plane.bridges[n.switch].attach(self.switches[n.switch].state.number_of(n.port), tap)
            nics.append(KvmNic(n.mac, tap, boots=True))
        spec = h.machine or LabMachine(backend="kvm")
        return KvmMachine(h.name, nics, self.network, self.state_dir / "hosts" / h.name, spec.memory, self.accel,
                          on_change=self._changed, cpus=spec.cpus)

    def _add_host(self, h: Host) -> None:
        if self._kvm(h):
            self.hosts[h.name] = self._add_kvm_host(h)
            self._start_bmc(h)
            return
        link = ControllerLink(self.controller_url, self._proxy_url)
        m = Machine(h.name, [n.mac for n in h.nics if n.switch], link,
                    ProcessOS(self.agent, self.state_dir / "hosts" / h.name), self.boots,
                    local_disk=h.local_disk, on_change=self._changed, link_up=partial(self._link_up, h))
        self.hosts[h.name] = m
        if h.hypervisor is not None and h.hypervisor.driver == "lab":
            self.hypervisors[h.name] = Hypervisor(
                m, h.hypervisor.url, h.hypervisor.username, h.hypervisor.password or "",
                self.state_dir / "hosts" / h.name, self._vm_machine, h.hypervisor.cpus, h.hypervisor.memory)
        elif _libvirt(h):
            self.hypervisors[h.name] = self._libvirt_host(h, m)
        elif h.hypervisor is not None and h.hypervisor.driver == "vsphere":
            self.hypervisors[h.name] = VsphereHost(m, h.hypervisor, self.state_dir / "hosts" / h.name,
                                                   self._vm_machine, self.checker.poke)
        if h.storage is not None and h.storage.driver == "lab":
            st = h.storage.settings
            model = LabStorage(h.name)
            self.storages[h.name] = (model, JsonApi(model, st["url"], st.get("username", "admin"), st.get("password", "")))
        self._start_bmc(h)

    def _libvirt_host(self, h: Host, m: Machine) -> LibvirtHost:
        assert self.network is not None and self.plane is not None and h.hypervisor is not None
        nic = next((n for n in h.nics if n.switch in self.switches), None)
        if nic is None:
            raise LabError(f"hypervisor host {h.name} has no NIC cabled to a switch: its VMs would reach nothing")
        uplink = (self.plane.bridges[nic.switch], self.switches[nic.switch].state.number_of(nic.port))
        try:
            return LibvirtHost(m, h.hypervisor, self.network, self.plane, self.state_dir / "hosts" / h.name, uplink,
                               len(self.hypervisors))
        except LibvirtHostError as e:
            raise LabError(str(e)) from None

    def _start_bmc(self, h: Host) -> None:
        if h.bmc.driver == "redfish":
            bmc: LabBmc | RedfishEmulator = RedfishEmulator(self.hosts[h.name], h.bmc.address, h.bmc.effective_port(),
                                                            h.bmc.username, h.bmc.password or "")
            bmc.start()
        else:
            bmc = open_bmc(self.hosts[h.name], h.bmc.username, h.bmc.password or "", h.bmc.address,
                           h.bmc.effective_port())
        self.bmcs[h.name] = bmc
        self.hosts[h.name].bmc_up = True

    def _vm_machine(self, name: str, boot_mac: str, root: Path) -> Machine:
        return Machine(name, [boot_mac], ControllerLink(self.controller_url, self._proxy_url),
                       ProcessOS(self.agent, root), self.boots, kind="vm", on_change=self._changed)

    def _proxy_url(self, machine: str) -> str:
        """The URL of ``machine``'s proxy to the controllers (see ``relay``)."""
        if machine not in self.relays:
            relay = Relay()
            relay.set_cut(machine in self.cut)
            self.relays[machine] = relay
        return asyncio.run_coroutine_threadsafe(self.relays[machine].url(), self.loop.loop).result(10)

    def _link_up(self, host: Host, mac: str) -> bool:
        nic = next((n for n in host.nics if n.mac == mac), None)
        if nic is None or nic.switch not in self.switches:
            return False
        st = self.switches[nic.switch].state
        return not st.down and st.admin_up[st.number_of(nic.port)]

    def _uplink(self, host: Host):
        """A hypervisor host's active-backup uplink: its first cabled NIC
        whose switch is up."""
        return next((n for n in host.nics if n.switch in self.switches and not self.switches[n.switch].state.down), None)

    def _path_down(self, m: Machine) -> bool:
        """Whether a machine's way to the controller runs through switches
        that are down: a server's through the NIC it booted from (or every
        member of the bond its OS made of that NIC), a VM's through every
        uplink of its host."""
        host = self._host_of(m)
        if m.kind == "vm":
            return self._uplink(host) is None
        mac = m.last_boot.mac if m.last_boot is not None else None
        bonded = next((i.nic_macs for i in netfiles.interfaces(m.os.root) if mac in i.nic_macs), (mac,))
        nics = [n for n in host.nics if n.mac in bonded and n.switch in self.switches]
        return bool(nics) and all(self.switches[n.switch].state.down for n in nics)

    def _recut(self) -> None:
        """Cut or restore every machine's path to the controller (a KVM
        machine's: its links)."""
        for m in self.all_machines():
            if isinstance(m, KvmMachine):
                self._set_links(m)
            else:
                self._set_cut(m.name, self._cut_off(m))

    def _set_links(self, m: KvmMachine) -> None:
        """A KVM machine's links follow its cables: down while it is
        partitioned, or its switch port is shut, or its switch is down."""
        host = self.inv.by_name("hosts")[m.name]
        cabled = [n for n in host.nics if n.switch]
        m.set_links([m.name not in self.cut and self._link_up(host, n.mac) for n in cabled])

    def _follow_ports(self) -> None:
        """Every KVM machine's links, as the switches' port states change
        (over SNMP, from the controller) and faults come and go."""
        while not self._stopping.wait(LINK_FOLLOW_INTERVAL):
            for m in list(self.hosts.values()):
                if isinstance(m, KvmMachine):
                    try:
                        self._set_links(m)
                    except Exception as e:  # a machine powered off meanwhile: the next round sees it
                        log.debug("links of %s not set: %r", m.name, e)

    def _cut_off(self, m: Machine) -> bool:
        return m.name in self.cut or self._host_of(m).name in self.cut or self._path_down(m)

    def _changed(self, m: Machine) -> None:
        if m.name in self.relays and m in self.all_machines():
            self._set_cut(m.name, self._cut_off(m))
        storage = self.storages.get(m.name)
        if storage is not None:
            model, api = storage
            serving = m.powered and m.last_boot is not None and m.last_boot.outcome == "disk"
            if serving and not model.up:
                api.start()
            elif not serving and model.up:
                api.stop()
            model.up = serving
        hyp = self.hypervisors.get(m.name)
        if hyp is not None:
            if m.powered and m.last_boot is not None and m.last_boot.outcome == "disk":
                hyp.boot()
            elif not m.powered:
                hyp.down()
        self.checker.poke()

    def down(self) -> None:
        self._stopping.set()
        if self._links_thread.is_alive():
            self._links_thread.join(2)
        self.checker.stop()
        for m in self.all_machines():
            m.power_off()
        for hyp in self.hypervisors.values():
            hyp.down()
        for model, api in self.storages.values():
            if model.up:
                api.stop()
        for b in self.bmcs.values():
            if b is not None:
                _silence(b)
        for em in self.switches.values():
            em.stop()
        for r in self.relays.values():
            asyncio.run_coroutine_threadsafe(r.stop(), self.loop.loop).result(5)
        if self.network is not None:
            asyncio.run_coroutine_threadsafe(self.network.close_forwarders(), self.loop.loop).result(5)
            if self.services is not None:
                self.services.stop()
            if self.plane is not None:
                self.plane.stop()
            self.network.delete()
        self.boots.shutdown(wait=True, cancel_futures=True)  # a boot overtaken by the power-off gives up
        if self.bmc_loop:
            self.bmc_loop.stop()
        self.loop.stop()

    # --- faults -----------------------------------------------------------------

    def fault(self, target: str, fault: str) -> str:
        if target in self.switches:
            if fault not in SWITCH_FAULTS:
                raise LabError(f"a switch takes: {', '.join(SWITCH_FAULTS)}")
            self.switches[target].set_down(fault == "down")
            self._recut()
            self.checker.poke()
            return f"switch {target} {fault}"
        if target not in self.hosts:
            raise LabError(f"no host or switch named {target!r}; hosts: {', '.join(sorted(self.hosts))}")
        if fault not in HOST_FAULTS:
            raise LabError(f"a host takes: {', '.join(HOST_FAULTS)}")
        m, hyp = self.hosts[target], self.hypervisors.get(target)
        if fault == "power-loss":
            self._bmc(target, up=False)
            m.power_off()
        elif fault in ("hang", "resume"):
            m.hang(fault == "hang")
            if hyp:
                hyp.hang(fault == "hang")
        elif fault == "os-crash":
            m.crash_os()
            if hyp:
                hyp.down()
        elif fault in ("partition", "heal"):
            (self.cut.add if fault == "partition" else self.cut.discard)(target)
            self._recut()
        elif fault in ("bmc-down", "bmc-up"):
            self._bmc(target, up=fault == "bmc-up")
        elif fault == "repair":
            self._repair(target)
        self.checker.poke()
        return f"host {target} {fault}"

    def _repair(self, target: str) -> None:
        """What a technician does: the OS thaws, the cable is back, the BMC
        answers, and a hypervisor or storage server is started from its disk
        again (a server for personas stays off until voe boots it)."""
        m = self.hosts[target]
        m.hang(False)
        if target in self.hypervisors:
            self.hypervisors[target].hang(False)
        self.cut.discard(target)
        self._recut()
        self._bmc(target, up=True)
        if (target in self.hypervisors or target in self.storages) and not m.powered:
            m.set_boot("disk", True)
            m.power_on()

    def _set_cut(self, machine: str, cut: bool) -> None:
        relay = self.relays.get(machine)
        if relay is not None:
            self.loop.loop.call_soon_threadsafe(relay.set_cut, cut)

    def _bmc(self, host: str, up: bool) -> None:
        b = self.bmcs.get(host)
        if up and b is None:
            self._start_bmc(self.inv.by_name("hosts")[host])
        elif not up and b is not None:
            _silence(b)
            self.bmcs[host] = None
            self.hosts[host].bmc_up = False

    # --- what is true -------------------------------------------------------------

    def all_machines(self) -> list[Machine | KvmMachine | LibvirtVm]:
        vms = [vm.machine for hyp in self.hypervisors.values() for vm in hyp.vms.values()]
        return list(self.hosts.values()) + vms

    def _host_of(self, m: Machine | KvmMachine | LibvirtVm) -> Host:
        hosts = self.inv.by_name("hosts")
        if m.kind == "physical":
            return hosts[m.name]
        return next(hosts[h] for h, hyp in self.hypervisors.items() if m.name in hyp.vms and hyp.vms[m.name].machine is m)

    def _isolation(self, m: Machine | KvmMachine | LibvirtVm) -> tuple[bool, str]:
        host = self._host_of(m)
        ports = [(n.switch, n.port) for n in host.nics if n.switch in self.switches]
        open_ports = []
        for sw, port in ports:
            st = self.switches[sw].state
            if not st.down and st.admin_up[st.number_of(port)]:
                open_ports.append(f"{sw}:{port}")
        if open_ports:
            return False, ""
        return True, "every switch port of " + host.name + " is shut or its switch is down"

    def truth(self) -> list[IncarnationTruth]:
        out = []
        for m in self.all_machines():
            seen = m.observed()
            if seen is None:
                continue
            persona, generation, pid, state = seen
            isolated, why = self._isolation(m)
            out.append(IncarnationTruth(persona, generation, m.name, pid, state, isolated, why))
        return out

    def attachments(self, persona: str) -> list[dataplane.Attachment]:
        out = []
        for m in self.all_machines():
            if not isinstance(m, Machine):
                continue  # frames between real machines: the data plane's to carry, not this table's
            if m.last_boot is None or m.last_boot.persona != persona or not m.os.alive() or m.os.frozen:
                continue
            host = self._host_of(m)
            nics = {n.mac: n for n in host.nics if n.switch}
            trunk = self._uplink(host)
            vm = None if m.kind == "physical" else self.hypervisors[host.name].vms[m.name]
            for iface in netfiles.interfaces(m.os.root):
                if vm is not None:  # each VM NIC is tagged by the hypervisor onto the host's trunk
                    mac = iface.nic_macs[0] if iface.nic_macs else None
                    if mac in vm.macs and trunk is not None:
                        i = vm.macs.index(mac)
                        vlan = vm.vlans[i] if i < len(vm.vlans) else None
                        sw = self.switches[trunk.switch].state
                        out.append(dataplane.Attachment(trunk.switch, sw.number_of(trunk.port), vlan, iface.addresses))
                    continue
                for nic in (nics[mac] for mac in iface.nic_macs if mac in nics):  # a bond: each member
                    sw = self.switches[nic.switch].state
                    out.append(dataplane.Attachment(nic.switch, sw.number_of(nic.port), iface.vlan, iface.addresses))
        return out

    def reach(self, a: str, b: str) -> tuple[bool, str]:
        """Whether ``a`` reaches ``b``: by packets between the guests when
        both run on KVM machines, else from the switches' tables."""
        on_kvm = {p: self._kvm_running(p) for p in (a, b)}
        if all(on_kvm.values()):
            return probes.reach(on_kvm[a], on_kvm[b], a, b)
        real = [p for p, m in on_kvm.items() if m is not None]
        if real:  # packets from a process go nowhere, and the tables do not hold real machines
            return False, (f"cannot tell: {real[0]} runs on a real machine and the other on a process machine; "
                           "reach is shown by packets between real machines, by the switches' tables between processes")
        return dataplane.reach(self.attachments(a), self.attachments(b), {k: v.state for k, v in self.switches.items()})

    def _kvm_running(self, persona: str) -> KvmMachine | LibvirtVm | None:
        for m in self.all_machines():
            seen = m.observed() if isinstance(m, KvmMachine | LibvirtVm) else None
            if seen is not None and seen[0] == persona and seen[3] == "running":
                return m
        return None

    def status(self) -> dict:
        bmcs = []
        for h in self.inv.hosts:
            bmcs.append({"host": h.name, "protocol": h.bmc.driver, "address": h.bmc.address,
                         "port": h.bmc.effective_port(), "username": h.bmc.username, "password": h.bmc.password,
                         "up": self.bmcs.get(h.name) is not None, "power": self.hosts[h.name].power_state(),
                         "boot": self.hosts[h.name].last_boot.outcome if self.hosts[h.name].last_boot else None})
        switches = []
        for sw in self.inv.switches:
            em = self.switches[sw.name]
            switches.append({"name": sw.name, "address": em.address, "port": em.port, "community": em.community,
                             "v3": em.v3, "down": em.state.down,
                             "ports": {p: em.state.number_of(p) for p in em.state.port_names}})
        hypervisors = [{"host": name, "url": self.inv.by_name("hosts")[name].hypervisor.url,
                        "username": self.inv.by_name("hosts")[name].hypervisor.username,
                        "password": self.inv.by_name("hosts")[name].hypervisor.password, "up": hyp.up,
                        "vms": [vm.as_dict() for vm in hyp.vms.values()]} for name, hyp in self.hypervisors.items()]
        return {"bmcs": bmcs, "switches": switches, "hypervisors": hypervisors, "controller": self.controller_url}

    def truth_report(self) -> dict:
        return {"incarnations": [asdict(i) for i in self.truth()], "violations": self.checker.seen,
                "samples": self.checker.samples,
                "storage": {name: {"up": model.up, "grants": model.snapshot()} for name, (model, _) in self.storages.items()}}


def _libvirt(h: Host) -> bool:
    """A hypervisor host of the KVM tier: this machine's libvirtd as its OS."""
    return h.hypervisor is not None and h.hypervisor.driver == "libvirt"


def _silence(bmc: LabBmc | RedfishEmulator) -> None:
    """The BMC stops answering, whatever protocol it spoke."""
    if isinstance(bmc, RedfishEmulator):
        bmc.stop()
    else:
        close_bmc(bmc)
