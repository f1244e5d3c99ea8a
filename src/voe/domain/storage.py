"""Which storage service holds a persona's image, and the access its
incarnations need there. Pure: the controller grants and revokes it.

The initiator is the persona's own identity, not the machine's: its iSCSI
initiator IQN, or for NFS its address on the network the server is on,
since both follow the persona to every machine."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from voe.domain.inventory import Inventory
from voe.domain.models import Host, Persona


@dataclass(frozen=True)
class Access:
    """One persona's access to its storage: an NFS root or an iSCSI LUN,
    granted to the initiator identity of its current incarnation."""

    persona: str
    kind: Literal["nfs", "iscsi"]
    path: str  # export path or backing image
    initiator: str  # IQN for iscsi, client address or '*'-free host spec for nfs
    target: str | None = None  # target IQN for iscsi
    lun: int = 1  # iscsi: the LUN the persona boots from

def _server(p: Persona) -> str | None:
    img = p.image
    if p.boot == "linux-nfs" and img.nfs_root:
        return img.nfs_root.split(":", 1)[0]
    if p.boot == "iscsi" and img.target_portal:
        return img.target_portal.rsplit(":", 1)[0] if img.target_portal.count(":") == 1 else img.target_portal
    return None


def storage_host(inv: Inventory, p: Persona) -> Host | None:
    server = _server(p)
    if server is None:
        return None
    return next((h for h in inv.hosts if h.storage is not None and server in h.storage.serves), None)


def _nfs_client(inv: Inventory, p: Persona, server: str) -> str | None:
    nets = inv.by_name("networks")
    addr = ipaddress.ip_address(server)
    for v in p.vnics:
        if v.ip is not None and addr in nets[v.network].subnet:
            return str(v.ip)
    boot = next((v for v in p.vnics if v.boot), p.vnics[0] if p.vnics else None)
    return str(boot.ip) if boot is not None and boot.ip is not None else None


def access_for(inv: Inventory, p: Persona) -> tuple[Host, Access] | None:
    """The storage host and the access one incarnation of ``p`` needs; None
    when no storage service in the inventory holds its image."""
    host = storage_host(inv, p)
    if host is None:
        return None
    if p.boot == "linux-nfs":
        server, path = p.image.nfs_root.split(":", 1)  # type: ignore[union-attr]
        client = _nfs_client(inv, p, server)
        if client is None:
            return None
        return host, Access(p.name, "nfs", path, client)
    lun_dir = host.storage.settings.get("lun_dir", "/srv/voe/luns")  # type: ignore[union-attr]
    return host, Access(p.name, "iscsi", p.image.disk or f"{lun_dir}/{p.name}.img", p.san.initiator_iqn or "",
                        p.image.target_iqn, p.image.lun)
