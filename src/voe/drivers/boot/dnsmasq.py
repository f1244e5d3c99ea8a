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

The second step is what stops the loop of iPXE loading iPXE. Where voe's
dnsmasq is the network's DHCP server, it tells iPXE that no ProxyDHCP
server will answer (iPXE's option 175.176), so that iPXE takes the first
offer instead of waiting for one. iPXE also waits for an IPv6 router
before it boots, for about 13 s where there is none: given ``ra_prefixes``,
dnsmasq advertises those prefixes on the boot networks, and iPXE goes on
as soon as it hears one.

One dnsmasq serves several boot networks (VLANs) at once: it listens on an
interface in each (``interfaces``) and answers in the subnet of the
interface a request came in on.

Which MACs are answered is voe's to say (``DhcpHosts``): one file per MAC
in dnsmasq's ``dhcp-hostsdir``, which dnsmasq rereads on its own (inotify)
whenever a file is written. A MAC booting a persona gets that persona's
boot address; a MAC whose persona has gone is written ``ignore`` (dnsmasq
does not notice a file removed), and with ``known_only`` a MAC voe never
named gets no answer at all.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from voe.drivers.boot.ipxe import _safe

# RFC 4578 client system architecture (DHCP option 93) values dnsmasq matches
_ARCH_BIOS = 0
_ARCH_EFI_X64 = (7, 9)


@dataclass(frozen=True)
class DhcpBoot:
    """What dnsmasq needs to know.

    ``range_start``/``range_end`` give full DHCP; with ``proxy_subnet``
    instead, dnsmasq only adds boot options to another server's leases;
    with ``static_subnets``, it hands out only the addresses ``DhcpHosts``
    names (each MAC its persona's), in each of those subnets."""

    controller_url: str
    interfaces: tuple[str, ...] = ()
    range_start: str | None = None
    range_end: str | None = None
    netmask: str | None = None
    proxy_subnet: str | None = None
    static_subnets: tuple[str, ...] = ()
    hosts_dir: str | None = None
    """dnsmasq's ``dhcp-hostsdir``: where ``DhcpHosts`` writes."""
    known_only: bool = False
    """Answer only MACs ``hosts_dir`` names."""
    lease_time: str = "12h"
    ra_prefixes: tuple[str, ...] = ()
    """IPv6 prefixes (``fd00:1::/64``) to advertise as a router would, each
    on the interface that holds an address in it."""
    tftp_root: str = "/var/lib/voe/tftp"
    bios_file: str = "undionly.kpxe"
    efi_file: str = "ipxe.efi"

    def __post_init__(self) -> None:
        full = self.range_start is not None and self.range_end is not None
        if [full, self.proxy_subnet is not None, bool(self.static_subnets)].count(True) != 1:
            raise ValueError("give one of range_start and range_end (full DHCP), proxy_subnet (proxy-DHCP) or "
                             "static_subnets (only the addresses voe names)")
        if self.known_only and self.hosts_dir is None:
            raise ValueError("known_only needs hosts_dir: the MACs to answer are named there")
        for name in ("range_start", "range_end", "netmask"):
            value = getattr(self, name)
            if value is not None:
                ipaddress.IPv4Address(value)
        for subnet in (self.proxy_subnet, *self.static_subnets):
            if subnet is not None:
                ipaddress.IPv4Network(subnet)
        for prefix in self.ra_prefixes:
            ipaddress.IPv6Network(prefix)


def render(cfg: DhcpBoot) -> str:
    """The dnsmasq.conf text; every value is checked as in an iPXE script,
    since a newline in one would add a dnsmasq directive."""
    script_url = f"{_safe('controller URL', cfg.controller_url.rstrip('/'))}/boot/ipxe/${{net0/mac}}"
    lines = [
        "# voe: network boot (generated; see voe.drivers.boot.dnsmasq)",
        "port=0",  # DHCP and TFTP only: no DNS
        "log-dhcp",
    ]
    if cfg.interfaces:
        lines += [*(f"interface={_safe('interface', i)}" for i in cfg.interfaces), "bind-interfaces"]
    if cfg.proxy_subnet is not None:
        net = ipaddress.IPv4Network(cfg.proxy_subnet)
        lines += [f"dhcp-range={net.network_address},proxy,{net.netmask}"]
    elif cfg.static_subnets:
        lines += [f"dhcp-range={net.network_address},static,{net.netmask},{_safe('lease_time', cfg.lease_time)}"
                  for net in map(ipaddress.IPv4Network, cfg.static_subnets)]
    else:
        mask = f",{cfg.netmask}" if cfg.netmask else ""
        lines += [f"dhcp-range={cfg.range_start},{cfg.range_end}{mask},{_safe('lease_time', cfg.lease_time)}"]
    if cfg.ra_prefixes:
        lines += ["enable-ra", *(f"dhcp-range={prefix.network_address},ra-only,{prefix.prefixlen}"
                                 for prefix in map(ipaddress.IPv6Network, cfg.ra_prefixes))]
    if cfg.hosts_dir is not None:
        lines += [f"dhcp-hostsdir={_safe('hosts_dir', cfg.hosts_dir)}"]
    if cfg.known_only:
        lines += ["dhcp-ignore=tag:!known"]
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
    if cfg.proxy_subnet is None:
        lines += ["dhcp-option=tag:ipxe,encap:175,176,1"]  # iPXE's no-pxedhcp: no ProxyDHCP offer to wait for
    else:
        # proxy-DHCP answers PXE ROMs through the PXE service menu (a full
        # file name: dnsmasq then adds no ".0" layer suffix); iPXE still
        # takes its script URL from dhcp-boot above
        lines += [
            f'pxe-service=tag:!ipxe,x86PC,"voe iPXE",{cfg.bios_file}',
            f'pxe-service=tag:!ipxe,x86-64_EFI,"voe iPXE",{cfg.efi_file}',
        ]
    return "\n".join(lines) + "\n"


DHCP_HOSTS = "dhcp-hosts"
"""The directory in a controller's data directory that it writes ``DhcpHosts`` to."""


class DhcpHosts:
    """The MACs dnsmasq answers, one file each in its ``dhcp-hostsdir``."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def allow(self, mac: str, address: str | None) -> None:
        """``mac`` is answered, with ``address`` when given."""
        self._write(mac, f"{_safe('MAC', mac)},{ipaddress.IPv4Address(address)}" if address else _safe("MAC", mac))

    def deny(self, mac: str) -> None:
        self._write(mac, f"{_safe('MAC', mac)},ignore")

    def _write(self, mac: str, line: str) -> None:
        """Whole or not at all: dnsmasq reads a file as soon as it appears
        (it skips names that start with a dot)."""
        name = mac.lower().replace(":", "-")
        tmp = self.directory / f".{name}.tmp"
        tmp.write_text(line + "\n")
        os.replace(tmp, self.directory / name)
