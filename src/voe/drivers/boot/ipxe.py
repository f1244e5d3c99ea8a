"""The per-MAC iPXE script: how a machine boots one incarnation of a persona.

Every script sets ``voe_args`` — the agent's parameters (controller URL,
persona, generation, one-use bootstrap token, the pin of the controller's
CA) — on one line of exactly the form ``set voe_args voe.controller=URL
voe.persona=NAME voe.generation=N voe.token=TOKEN [voe.ca_sha256=HEX]``;
the lab's machines read that line, and a ``linux-nfs`` kernel line passes
``${voe_args}`` on to ``/proc/cmdline``. The script is fetched over plain
HTTP (firmware has no CA to check), so it carries nothing that outlives
the boot: the bootstrap token is worth one exchange for the agent's real
credential, over TLS checked against the pinned CA.

Kernels and initrds come from the controller's boot port, the one plain
HTTP listener (``/boot/files/{mac}/vmlinuz``: the kernel of the root that
MAC boots now, see ``boot_files``); agents call its TLS agent endpoint.

* ``linux-nfs``: kernel + initrd from the controller, root on NFSv4, the
  kernel's console on the first serial port too (serial over LAN is how a
  datacenter watches a server boot). The NFS client's identity is the
  persona's (``nfs.nfs4_unique_id``): booted from an initramfs, every
  server's kernel would otherwise present the same NFSv4 client owner, one
  taken for the other by the server; with it, a new incarnation is the
  same client rebooted, and the server drops the old one's state.
* ``iscsi``: ``sanboot`` of the persona's LUN, presenting its initiator IQN
  (iPXE also publishes it in the iBFT, so the booted OS logs in as the same
  initiator the target's ACL allows).
* ``fc``: iPXE cannot drive an FC HBA. The script records the WWPN the HBA
  must present (``voe_wwpn``, zoned and masked to the persona's LUN) and
  ``exit``s to the next boot device; the HBA's option ROM then boots the LUN.

Every value is checked before it is written: a space, quote, ``$``, ``#``,
``;`` or newline could end a word or a line and inject an iPXE command.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from voe.domain.models import Persona

_SAFE = re.compile(r"[A-Za-z0-9._:/@%+=,\-\[\]]+")


class UnsafeBootValue(ValueError):
    """A value would not survive as one word of an iPXE script."""


def _safe(field: str, value: object) -> str:
    """Refuse anything that could end a word or a line in an iPXE script."""
    text = "" if value is None else str(value)
    if not _SAFE.fullmatch(text):
        raise UnsafeBootValue(f"{field} {text!r} is empty or holds characters an iPXE script cannot carry "
                              "safely (spaces, quotes, newlines, $, #, ; ...)")
    return text


@dataclass(frozen=True)
class ControllerLinks:
    """Where a booted machine finds the controller."""

    agents: str
    """The agent endpoint (HTTPS in production); with several controllers,
    each one's, comma-separated."""
    boot: str
    """The plain-HTTP boot port: scripts, kernels, initrds."""
    ca_pin: str | None = None
    """SHA-256 of the CA that signs the agent endpoint's certificate."""


def agent_args(persona: Persona, generation: int, links: ControllerLinks, token: str) -> str:
    """The ``voe_args`` words, in the one order the agent and the lab read."""
    words = [
        f"voe.controller={_safe('controller URL', ','.join(spread(links.agents.split(','), persona.name)))}",
        f"voe.persona={_safe('persona', persona.name)}",
        f"voe.generation={int(generation)}",
        f"voe.token={_safe('token', token)}",
    ]
    if links.ca_pin:
        words.append(f"voe.ca_sha256={_safe('CA pin', links.ca_pin)}")
    return " ".join(words)


def spread(agents: list[str], persona: str) -> list[str]:
    """The controllers' URLs, starting at one chosen by the persona's name:
    agents spread over the controllers, and each keeps to one."""
    urls = [u.strip().rstrip("/") for u in agents if u.strip()]
    if not urls:
        return []
    first = zlib.crc32(persona.encode()) % len(urls)
    return urls[first:] + urls[:first]


def render(persona: Persona, generation: int, links: ControllerLinks, token: str, boot_mac: str) -> str:
    """The whole script for ``boot_mac`` booting ``persona`` as ``generation``."""
    lines = [
        "#!ipxe",
        f"# voe: {persona.name} generation {int(generation)}, booting on {_safe('MAC', boot_mac)}",
        f"set voe_args {agent_args(persona, generation, links, token)}",
    ]
    files = f"{_safe('boot URL', links.boot.rstrip('/'))}/boot/files/{_safe('MAC', boot_mac)}"
    if persona.boot == "linux-nfs":
        body = _linux_nfs(persona, files, boot_mac)
    else:
        body = {"iscsi": _iscsi, "fc": _fc}[persona.boot](persona, files)
    return "\n".join(lines + body) + "\n"


def _linux_nfs(persona: Persona, files: str, boot_mac: str) -> list[str]:
    """The kernel asks DHCP on the NIC it booted from only (dracut's
    ``ip=MAC:dhcp``, the MAC in BOOTIF's dashed form): a persona's other
    NICs, a VM's each on its own VLAN, have no DHCP server to wait for."""
    img = persona.image
    nfs_root = _safe("image.nfs_root", img.nfs_root)
    if ":" not in nfs_root:
        raise UnsafeBootValue(f"image.nfs_root {nfs_root!r} is not SERVER:/PATH")
    kernel = _safe("image.kernel", img.kernel or f"{files}/{KERNEL}")
    initrd = _safe("image.initrd", img.initrd or f"{files}/{INITRD}")
    return [
        f"kernel {kernel} root=/dev/nfs nfsroot={nfs_root},vers=4 ip={_safe('MAC', boot_mac).replace(':', '-')}:dhcp rw "
        f"nfs.nfs4_unique_id=voe-{_safe('persona', persona.name)} {CONSOLES} ${{voe_args}} initrd=initrd.img",
        # --name makes ``initrd=initrd.img`` hold whatever the URL's basename is
        f"initrd --name initrd.img {initrd}",
        "boot",
    ]


KERNEL, INITRD = "vmlinuz", "initrd.img"
CONSOLES = "console=tty0 console=ttyS0,115200n8"
_NFSROOT = re.compile(r"\bnfsroot=[^:\s]+:([^,\s]+)")


def nfs_root_path(script: str) -> str | None:
    """The path of the NFS root a rendered script mounts (on its server)."""
    m = _NFSROOT.search(script)
    return m.group(1) if m else None


def _iscsi(persona: Persona, files: str) -> list[str]:
    img = persona.image
    portal = _safe("image.target_portal", img.target_portal)
    host, _, port = portal.rpartition(":") if portal.count(":") == 1 else (portal, "", "")
    return [
        f"set initiator-iqn {_safe('san.initiator_iqn', persona.san.initiator_iqn)}",
        f"sanboot iscsi:{host}::{int(port or 3260)}:{int(img.lun)}:{_safe('image.target_iqn', img.target_iqn)}",
    ]


def _fc(persona: Persona, files: str) -> list[str]:
    img = persona.image
    return [
        f"set voe_wwpn {_safe('san.wwpn', persona.san.wwpn)}",
        f"echo voe: FC boot of LUN {int(img.lun)} on target {_safe('image.target_wwpn', img.target_wwpn)} "
        "through the HBA presenting ${voe_wwpn}",
        "exit",
    ]
