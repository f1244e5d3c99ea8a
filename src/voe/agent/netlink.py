"""The kernel's network interfaces, read over rtnetlink with the standard
library: each link's name, MAC, permanent MAC, flags, master and 802.1q
VLAN id, and each IPv4 address. No program is run, so a reading needs
nothing from a root that may have become unreachable (an NFS root behind
a switch that is down), and nothing is imported beyond ``socket`` and
``struct``: the agent starts without a netlink library, whose import
(pyroute2 loads every plugin it declares) weighs on a slow CPU."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator

RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR = 16, 18, 20, 22
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP, NLM_F_DUMP_INTR = 0x1, 0x300, 0x10
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_PERM_ADDRESS = 1, 3, 10, 18, 54
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_VLAN_ID = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
NLA_TYPE_MASK = 0x3FFF  # without the nested and byte-order flags

HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefix length, flags, scope, index
ATTR = struct.Struct("=HH")  # rtattr: length, type


class DumpInterrupted(RuntimeError):
    """The kernel's tables changed during a dump (a link or address came or
    went): its answer is incomplete and is asked again."""


def links() -> list[dict]:
    """Every link: ``index``, ``type`` (ARPHRD), ``flags``, ``name``,
    ``mac``, ``perm_mac``, ``master`` (an index) and ``vlan`` (an id, for
    an 802.1q interface)."""
    return [_link(body) for body in _dump(RTM_GETLINK, RTM_NEWLINK, IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0))]


def _link(body: bytes) -> dict:
    """One RTM_NEWLINK message's body, as ``links`` returns it."""
    _, kind, index, flags, _ = IFINFO.unpack_from(body)
    attrs = _attrs(body[IFINFO.size:])
    info = _attrs(attrs.get(IFLA_LINKINFO, b""))
    vlan = None
    if info.get(IFLA_INFO_KIND, b"").rstrip(b"\0") == b"vlan":
        vlan = struct.unpack_from("=H", _attrs(info.get(IFLA_INFO_DATA, b"")).get(IFLA_VLAN_ID, b"\0\0"))[0]
    return {"index": index, "type": kind, "flags": flags, "name": attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(),
            "mac": _mac(attrs.get(IFLA_ADDRESS)), "perm_mac": _mac(attrs.get(IFLA_PERM_ADDRESS)),
            "master": struct.unpack("=i", attrs[IFLA_MASTER])[0] if IFLA_MASTER in attrs else None, "vlan": vlan}


def ipv4_addresses() -> list[dict]:
    """Every IPv4 address: ``index`` (its link's) and ``cidr``."""
    out = []
    for body in _dump(RTM_GETADDR, RTM_NEWADDR, IFADDR.pack(socket.AF_INET, 0, 0, 0, 0)):
        family, prefix, _, _, index = IFADDR.unpack_from(body)
        attrs = _attrs(body[IFADDR.size:])
        address = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
        if family == socket.AF_INET and address:
            out.append({"index": index, "cidr": f"{socket.inet_ntoa(address)}/{prefix}"})
    return out


def _dump(request: int, answer: int, body: bytes) -> Iterator[bytes]:
    """The bodies of a dump's messages of type ``answer``."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.sendall(HEADER.pack(HEADER.size + len(body), request, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
        interrupted = False
        while True:
            data = sock.recv(1 << 16)
            offset = 0
            while offset + HEADER.size <= len(data):
                length, kind, flags, _, _ = HEADER.unpack_from(data, offset)
                if length < HEADER.size:
                    raise OSError("rtnetlink answered a malformed message")
                payload = data[offset + HEADER.size:offset + length]
                offset += (length + 3) & ~3
                interrupted |= bool(flags & NLM_F_DUMP_INTR)
                if kind == NLMSG_DONE:
                    if interrupted:
                        raise DumpInterrupted("the kernel's tables changed during the dump")
                    return
                if kind == NLMSG_ERROR:
                    error = -struct.unpack_from("=i", payload)[0]
                    if error:
                        raise OSError(error, f"rtnetlink: {os.strerror(error)}")
                elif kind == answer:
                    yield payload


def _attrs(data: bytes) -> dict[int, bytes]:
    """A message's attributes by type (nested ones stay bytes, to be read again)."""
    out, offset = {}, 0
    while offset + ATTR.size <= len(data):
        length, kind = ATTR.unpack_from(data, offset)
        if length < ATTR.size:
            break
        out[kind & NLA_TYPE_MASK] = data[offset + ATTR.size:offset + length]
        offset += (length + 3) & ~3
    return out


def _mac(raw: bytes | None) -> str | None:
    return ":".join(f"{b:02x}" for b in raw) if raw else None
