"""The per-MAC iPXE script: how a machine boots one incarnation of a persona.

Every script sets ``voe_args`` — the agent's parameters (controller URL,
persona, generation, credential) — which a ``linux-nfs`` kernel line
passes on to ``/proc/cmdline``. SAN-booted OSes read the same words from
the iSCSI boot firmware table's companion file the image carries.

* ``linux-nfs``: kernel + initrd from the controller, root on NFS.
* ``iscsi``: ``sanboot`` of the persona's LUN with its initiator IQN.
* ``fc``: iPXE cannot drive an FC HBA; the script exits to the next boot
  device, and the HBA's option ROM boots the LUN zoned to the WWPN voe
  assigned (recorded in ``voe_wwpn`` for the record and the logs).
"""

from __future__ import annotations

import re

from voe.domain.models import Persona

_SAFE = re.compile(r"^[A-Za-z0-9._:/@%+=,\-\[\]]+$")


class UnsafeBootValue(ValueError):
    pass


def _safe(field: str, value: object) -> str:
    """Refuse anything that could end a word or a line in an iPXE script."""
    text = str(value)
    if not _SAFE.match(text):
        raise UnsafeBootValue(f"{field} {text!r} holds characters an iPXE script cannot carry safely "
                              "(spaces, quotes, newlines, $ or ;)")
    return text


def agent_args(persona: Persona, generation: int, controller_url: str, token: str) -> str:
    return " ".join([
        f"voe.controller={_safe('controller URL', controller_url)}",
        f"voe.persona={_safe('persona', persona.name)}",
        f"voe.generation={int(generation)}",
        f"voe.token={_safe('token', token)}",
    ])


def render(persona: Persona, generation: int, controller_url: str, token: str, boot_mac: str) -> str:
    base = controller_url.rstrip("/")
    lines = [
        "#!ipxe",
        f"# voe: {persona.name} generation {generation}, booting on {_safe('MAC', boot_mac)}",
        f"set voe_args {agent_args(persona, generation, base, token)}",
    ]
    img = persona.image
    if persona.boot == "linux-nfs":
        server_path = _safe("nfs_root", img.nfs_root or f"{persona.name}")
        kernel = _safe("kernel", img.kernel or f"{base}/boot/images/vmlinuz")
        initrd = _safe("initrd", img.initrd or f"{base}/boot/images/initrd.img")
        lines += [
            f"kernel {kernel} initrd=initrd.img root=/dev/nfs nfsroot={server_path},vers=4 ip=dhcp rw ${{voe_args}}",
            f"initrd {initrd}",
            "boot",
        ]
    elif persona.boot == "iscsi":
        portal = _safe("target_portal", img.target_portal or "")
        host, _, port = portal.partition(":")
        lines += [
            f"set initiator-iqn {_safe('initiator IQN', persona.san.initiator_iqn)}",
            f"sanboot iscsi:{host}::{port or 3260}:{int(img.lun)}:{_safe('target IQN', img.target_iqn)}",
        ]
    else:  # fc
        lines += [
            f"set voe_wwpn {_safe('WWPN', persona.san.wwpn)}",
            f"echo voe: FC boot of LUN {int(img.lun)} on {_safe('target WWPN', img.target_wwpn)} through the HBA",
            "exit",
        ]
    return "\n".join(lines) + "\n"
