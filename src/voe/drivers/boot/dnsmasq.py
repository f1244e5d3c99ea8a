"""A dnsmasq configuration that lets a real network boot from voe.

The chain a machine follows:

1. its NIC's PXE ROM asks DHCP; dnsmasq answers (full DHCP on a range, or
   proxy-DHCP beside an existing DHCP server) and hands it iPXE over TFTP —
   ``undionly.kpxe`` to legacy BIOS, ``ipxe.efi`` to x86-64 UEFI, chosen by
   the client architecture (DHCP option 93, RFC 4578);
2. iPXE asks DHCP again, this time with user class ``iPXE``; dnsmasq tags it
   and hands it the controller's per-MAC script URL,
   ``http://CONTROLLER/boot/ipxe/${net0/mac}`` (iPXE expands the MAC);
3. the controller answers with the script of the persona booting on that MAC.

The second step is what stops the loop of iPXE loading iPXE.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from voe.drivers.boot.ipxe import _safe

# RFC 4578 client system architecture (DHCP option 93) values dnsmasq matches
_ARCH_BIOS = 0
_ARCH_EFI_X64 = (7, 9)


@dataclass(frozen=True)
class DhcpBoot:
    """What dnsmasq needs to know.

    ``range_start``/``range_end`` give full DHCP; with ``proxy_subnet``
    instead, dnsmasq only adds boot options to another server's leases."""

    controller_url: str
    interface: str | None = None
    range_start: str | None = None
    range_end: str | None = None
    netmask: str | None = None
    proxy_subnet: str | None = None
    lease_time: str = "12h"
    tftp_root: str = "/var/lib/voe/tftp"
    bios_file: str = "undionly.kpxe"
    efi_file: str = "ipxe.efi"

    def __post_init__(self) -> None:
        full = self.range_start is not None and self.range_end is not None
        if full == (self.proxy_subnet is not None):
            raise ValueError("give either range_start and range_end (full DHCP) or proxy_subnet (proxy-DHCP)")
        for name in ("range_start", "range_end", "netmask"):
            value = getattr(self, name)
            if value is not None:
                ipaddress.IPv4Address(value)
        if self.proxy_subnet is not None:
            ipaddress.IPv4Network(self.proxy_subnet)


def render(cfg: DhcpBoot) -> str:
    """The dnsmasq.conf text; every value is checked as in an iPXE script,
    since a newline in one would add a dnsmasq directive."""
    script_url = f"{_safe('controller URL', cfg.controller_url.rstrip('/'))}/boot/ipxe/${{net0/mac}}"
    lines = [
        "# voe: network boot (generated; see voe.drivers.boot.dnsmasq)",
        "port=0",  # DHCP and TFTP only: no DNS
        "log-dhcp",
    ]
    if cfg.interface:
        lines += [f"interface={_safe('interface', cfg.interface)}", "bind-interfaces"]
    if cfg.proxy_subnet is not None:
        net = ipaddress.IPv4Network(cfg.proxy_subnet)
        lines += [f"dhcp-range={net.network_address},proxy,{net.netmask}"]
    else:
        mask = f",{cfg.netmask}" if cfg.netmask else ""
        lines += [f"dhcp-range={cfg.range_start},{cfg.range_end}{mask},{_safe('lease_time', cfg.lease_time)}"]
    lines += [
        "enable-tftp",
        f"tftp-root={_safe('tftp_root', cfg.tftp_root)}",
        # iPXE itself: tagged by its user class, chained to the controller
        "dhcp-userclass=set:ipxe,iPXE",
        # PXE ROMs by architecture (RFC 4578 option 93)
        f"dhcp-match=set:bios,option:client-arch,{_ARCH_BIOS}",
        *(f"dhcp-match=set:efi64,option:client-arch,{arch}" for arch in _ARCH_EFI_X64),
        f"dhcp-boot=tag:ipxe,{script_url}",
        f"dhcp-boot=tag:!ipxe,tag:bios,{_safe('bios_file', cfg.bios_file)}",
        f"dhcp-boot=tag:!ipxe,tag:efi64,{_safe('efi_file', cfg.efi_file)}",
    ]
    if cfg.proxy_subnet is not None:
        # proxy-DHCP answers PXE ROMs through the PXE service menu (a full
        # file name: dnsmasq then adds no ".0" layer suffix); iPXE still
        # takes its script URL from dhcp-boot above
        lines += [
            f'pxe-service=tag:!ipxe,x86PC,"voe iPXE",{cfg.bios_file}',
            f'pxe-service=tag:!ipxe,x86-64_EFI,"voe iPXE",{cfg.efi_file}',
        ]
    return "\n".join(lines) + "\n"
