"""What every reconciler step needs, in one object."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from voe.controller.crosscheck import SILENCE_MEMORY, Lookouts
from voe.controller.device_watch import DeviceWatch
from voe.controller.devices import Devices
from voe.controller.fabric_fence import FabricFence
from voe.controller.metrics import Metrics
from voe.controller.pacing import BeatPace
from voe.controller.ports import PortKeeper
from voe.controller.retention import Retention
from voe.controller.services import Services
from voe.controller.storage import StorageKeeper
from voe.controller.timed import TimedSet
from voe.controller.timing import Timing
from voe.controller.workers import Workers
from voe.domain.inventory import Inventory
from voe.drivers.boot.dnsmasq import DHCP_HOSTS, DhcpHosts
from voe.drivers.boot.ipxe import ControllerLinks
from voe.store.runtime import RuntimeStore

log = logging.getLogger("voe.controller")

FAILED_HOST_MEMORY = 300.0  # seconds a retarget keeps away from a host where it was fenced


@dataclass
class Ctx:
    services: Services
    runtime: RuntimeStore
    devices: Devices
    timing: Timing
    links: ControllerLinks
    retention: Retention = field(default_factory=Retention)
    workers: Workers = field(init=False)
    metrics: Metrics = field(init=False)
    ports: PortKeeper = field(init=False)
    fabric: FabricFence = field(init=False)
    storage: StorageKeeper = field(init=False)
    switches: DeviceWatch = field(init=False)
    hypervisors: DeviceWatch = field(init=False)
    lookouts: Lookouts = field(init=False)
    pace: BeatPace = field(init=False)
    dhcp: DhcpHosts = field(init=False)
    """The MACs the boot network's dnsmasq answers (its ``dhcp-hostsdir``
    is ``DHCP_HOSTS`` in the data directory)."""
    # hints, never evidence: devices that did not answer a cross-check, and
    # hosts where an incarnation was just fenced (a retarget avoids them)
    silence: TimedSet = field(default_factory=lambda: TimedSet(SILENCE_MEMORY))
    failed_hosts: TimedSet = field(default_factory=lambda: TimedSet(FAILED_HOST_MEMORY))
    term: int | None = None
    """The term this controller leads (``store.leadership``): every write
    of its reconciler's threads carries it. None: it does not lead, or its
    store has one controller only."""

    def __post_init__(self) -> None:
        self.workers = Workers(self.timing, lambda: self.term)
        self.metrics = Metrics(self.runtime, self.inventory)
        self.runtime.on_move = self.metrics.moved
        self.devices.observer = self.metrics.driver_call
        probe_timeout, every = self.timing.switch_probe_timeout, self.timing.switch_probe_interval
        self.switches = DeviceWatch("switch", lambda inv: inv.by_name("switches"),
                                    lambda sw: self.devices.switch_probe(sw, probe_timeout), self.log, every,
                                    self.workers.probes, shunned="new trunks", probe_timeout=probe_timeout,
                                    max_probes_per_second=self.timing.max_probes_per_second)
        self.hypervisors = DeviceWatch("hypervisor", lambda inv: {h.name: h for h in inv.hosts if h.hypervisor},
                                       lambda h: self.devices.hypervisor_probe(h, probe_timeout), self.log,
                                       self.timing.hypervisor_probe_interval, self.workers.probes,
                                       shunned="new VMs", doubt_early=False, probe_timeout=probe_timeout,
                                       max_probes_per_second=self.timing.max_probes_per_second)
        self.ports = PortKeeper(self.runtime, self.devices.switch, self.log, self.switches, self.workers)
        self.fabric = FabricFence(self.ports)
        self.switches.on_down = lambda name: self.ports.route_around(self.inventory, name)
        self.switches.on_back = lambda name: self.ports.restore(self.inventory, name)
        self.lookouts = Lookouts(self)
        self.pace = BeatPace(self.timing)
        self.storage = StorageKeeper(self.runtime, self.devices, self.log, self.services.images)
        self.dhcp = DhcpHosts(self.services.data_dir / DHCP_HOSTS)

    def inventory(self) -> Inventory:
        return self.services.inventory.load()

    def log(self, severity: str, kind: str, message: str, **where: Any) -> None:
        """An event in the store's log; one the store refuses (out of
        reach, or this term deposed) goes to the process's log instead:
        recording what happened never stops what happens (a device watch
        whose failure could not be recorded ended its thread)."""
        try:
            self.services.events.append(severity, kind, message, **where)
        except Exception as e:
            log.warning("could not record a %s event (%s): %s", kind, str(e).splitlines()[0], message)
