"""The physical fabric as the console's physical view draws it: every cabled
NIC, the switch port at its other end, and that port's VLANs — what the
live incarnations need (planned) beside what the switch last read back
(confirmed), so a port that voe could not configure stands out."""

from __future__ import annotations

from fastapi import APIRouter, Request

from voe.api.auth import Viewer
from voe.domain import wiring
from voe.domain.ports import PortConfig

router = APIRouter(tags=["fabric"])


def _port(cfg: PortConfig | None) -> dict | None:
    if cfg is None:
        return None
    return {"mode": cfg.mode, "native_vlan": cfg.native_vlan, "tagged": sorted(cfg.tagged), "admin_up": cfg.admin_up}


@router.get("/fabric", summary="Cables between host NICs and switch ports, with each port's VLANs")
def fabric(request: Request, _: Viewer) -> dict:
    inv = request.app.state.services.inventory.load()
    controller = request.app.state.controller
    hosts = [h.name for h in inv.hosts]
    planned = controller.fabric.plan(inv, hosts) if controller is not None else {}
    confirmed = controller.fabric.confirmed() if controller is not None else {}
    fenced = request.app.state.runtime.fenced_hosts()
    down = controller.fabric.switches_down() if controller is not None else frozenset()
    booted = {i.host: i.boot_mac for i in request.app.state.runtime.live() if i.kind == "physical"}
    cables = []
    for h in inv.hosts:
        try:
            trunk = wiring.trunk_nic(inv, h, down, booted.get(h.name)).name
        except wiring.WiringError:
            trunk = None
        for nic in wiring.cabled_nics(inv, h):
            key = (nic.switch, nic.port)
            cables.append({"host": h.name, "nic": nic.name, "mac": nic.mac, "switch": nic.switch, "port": nic.port,
                           "trunk": nic.name == trunk, "planned": _port(planned.get(key)),
                           "confirmed": _port(confirmed.get(key))})
    return {"cables": cables, "switches_down": sorted(down),
            "fenced": {name: {**v, "since": v["since"].isoformat()} for name, v in fenced.items()}}
