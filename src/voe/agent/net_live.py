"""The ``live`` network backend: the persona's identity configured on the
running kernel over netlink (pyroute2), for images without networkd.

On the trunk NIC (matched by its hardware MAC) the boot vNIC's MAC and
address; an 802.1q VLAN interface per tagged vNIC with the persona's MAC and
address; a dedicated vNIC (or a VM's NIC) matched by MAC. Idempotent: what
is already there is left alone. A kernel without 802.1q support (no 8021q
module) cannot create VLAN interfaces; that is reported as such."""

from __future__ import annotations

import ipaddress

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError


class NoVlanSupport(RuntimeError):
    pass


def _by_mac(ip: IPRoute) -> dict[str, int]:
    return {link.get_attr("IFLA_ADDRESS"): link["index"] for link in ip.get_links()}


def _set_mac(ip: IPRoute, index: int, mac: str) -> None:
    link = ip.get_links(index)[0]
    if link.get_attr("IFLA_ADDRESS") != mac:
        ip.link("set", index=index, state="down")
        ip.link("set", index=index, address=mac)
    ip.link("set", index=index, state="up")


def _address(ip: IPRoute, index: int, cidr: str) -> None:
    iface = ipaddress.ip_interface(cidr)
    have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ip.get_addr(index=index)}
    if (str(iface.ip), iface.network.prefixlen) not in have:
        ip.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)


def apply(config: dict) -> None:
    with IPRoute() as ip:
        macs = _by_mac(ip)
        trunk = config.get("trunk")
        gateway = None
        for i in config["interfaces"]:
            gateway = gateway or i.get("gateway")
            if trunk and i["tagged"]:
                parent = macs[trunk["nic_mac"]]
                existing = ip.link_lookup(ifname=i["name"])
                if not existing:
                    try:
                        ip.link("add", ifname=i["name"], kind="vlan", link=parent, vlan_id=i["vlan"], address=i["mac"])
                    except NetlinkError as e:
                        raise NoVlanSupport(f"cannot create VLAN {i['vlan']} on {trunk['nic_mac']}: {e} "
                                            "(is the 8021q module loaded?)") from None
                    existing = ip.link_lookup(ifname=i["name"])
                ip.link("set", index=existing[0], state="up")
                _address(ip, existing[0], i["address"])
            else:
                index = macs.get(i["nic_mac"]) or macs.get(i["mac"])
                if index is None:
                    raise RuntimeError(f"no NIC with MAC {i['nic_mac']} on this machine")
                _set_mac(ip, index, i["mac"])
                _address(ip, index, i["address"])
        if gateway and not ip.get_default_routes():
            ip.route("add", dst="default", gateway=gateway)
