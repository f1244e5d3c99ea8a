"""Switch ports follow what runs where. After any incarnation begins or
ends, the ports of its host are recomputed from the live incarnations (not
patched), and only ports whose confirmed state differs are written. One lock
per switch: two personas starting on one hypervisor host cannot lose each
other's VLANs."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from voe.domain import wiring
from voe.domain.inventory import Inventory
from voe.drivers.base import PortConfig
from voe.store.runtime import RuntimeStore

_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="voe-ports")


class PortKeeper:
    def __init__(self, runtime: RuntimeStore, switch_driver: Callable, log: Callable[..., None]):
        self.runtime = runtime
        self.switch_driver = switch_driver
        self.log = log
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._confirmed: dict[tuple[str, str], PortConfig] = {}

    def plan(self, inv: Inventory, hosts: Iterable[str]) -> dict[tuple[str, str], PortConfig]:
        live = [wiring.Placement(i.persona, i.kind, i.host) for i in self.runtime.live()]
        plan = wiring.port_plan(inv, live, hosts)
        fenced = self.runtime.fenced_hosts()
        for name in hosts:
            if fenced.get(name, {}).get("reason", "").startswith("fabric"):
                for nic in wiring.cabled_nics(inv, inv.by_name("hosts")[name]):
                    cfg = plan[(nic.switch, nic.port)]
                    plan[(nic.switch, nic.port)] = PortConfig(cfg.mode, cfg.native_vlan, cfg.tagged, admin_up=False)
        return plan

    def reconcile(self, load_inventory: Callable[[], Inventory], hosts: Iterable[str], persona: str | None = None) -> None:
        hosts = list(hosts)
        inv = load_inventory()
        switches = inv.by_name("switches")
        by_switch: defaultdict[str, list[str]] = defaultdict(list)
        for h in hosts:
            for nic in wiring.cabled_nics(inv, inv.by_name("hosts")[h]):
                by_switch[nic.switch].append(nic.port)
        # switches are independent: configure them at once
        errors = list(_POOL.map(lambda sw: self._switch(sw, by_switch[sw], switches, load_inventory, hosts, persona),
                                sorted(by_switch)))
        for e in errors:
            if e is not None:
                raise e

    def _switch(self, sw_name, ports, switches, load_inventory, hosts, persona):
        try:
            with self._locks[sw_name]:
                plan = self.plan(load_inventory(), hosts)  # fresh, inside the lock
                for port in ports:
                    want = plan[(sw_name, port)]
                    if self._confirmed.get((sw_name, port)) == want:
                        continue
                    self.log("info", "driver-call", f"configure {sw_name} port {port}: {_describe(want)}",
                             persona=persona)
                    self.switch_driver(switches[sw_name]).configure_port(port, want)
                    # the driver confirmed the read-back matches (VLANs and
                    # admin state); remember what was asked, mode included
                    self._confirmed[(sw_name, port)] = want
        except Exception as e:  # handed back to the caller's thread
            return e
        return None

    def forget(self, switch: str, port: str) -> None:
        self._confirmed.pop((switch, port), None)


def _describe(cfg: PortConfig) -> str:
    tagged = ",".join(str(v) for v in sorted(cfg.tagged)) or "none"
    state = "up" if cfg.admin_up else "DOWN"
    return f"{cfg.mode}, native {cfg.native_vlan or 'none'}, tagged {tagged}, admin {state}"
