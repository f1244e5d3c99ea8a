"""Raw Ethernet frames sent and caught on interfaces of a lab namespace
(AF_PACKET), tagged or not: how the tests and the data-plane benchmark see
what a lab switch forwards without a VLAN-capable kernel on this side."""

from __future__ import annotations

import select
import socket
import struct
import subprocess
import time
from dataclasses import dataclass

from voe.lab.netns import LabNetwork

ETH_P_ALL = 0x0003
PROBE_TYPE = 0x88B5  # IEEE 802 local experimental EtherType
TPID = 0x8100
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10
AUXDATA = struct.Struct("IIIHHHH")  # struct tpacket_auxdata


@dataclass(frozen=True)
class Caught:
    src: str
    vlan: int | None  # None: untagged
    payload: bytes


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


class Port:
    """One end of a veth whose other end is a switch port, silent but for
    the frames sent on it: without IPv6, its kernel sends no neighbour
    discovery or MLD of its own, from which a switch would learn its MAC
    at a moment no test chose."""

    def __init__(self, network: LabNetwork, interface: str, mac: str):
        self.interface = interface
        self.mac = mac
        subprocess.run(network.command(["sysctl", "-qw", f"net.ipv6.conf.{interface}.disable_ipv6=1"]), check=True)
        network.run("link", "set", interface, "address", mac)
        self.sock = network.open_socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        self.sock.bind((interface, 0))
        self.sock.setblocking(False)

    def send(self, payload: bytes, dst: str = "ff:ff:ff:ff:ff:ff", vlan: int | None = None) -> None:
        tag = struct.pack("!HH", TPID, vlan) if vlan is not None else b""
        frame = mac_bytes(dst) + mac_bytes(self.mac) + tag + struct.pack("!H", PROBE_TYPE) + payload
        self.sock.send(frame.ljust(60, b"\0"))

    def drain(self) -> None:
        while select.select([self.sock], [], [], 0)[0]:
            self.sock.recv(65536)

    def caught(self, wait: float = 0.5) -> list[Caught]:
        """The probe frames that arrived within ``wait`` seconds, or before
        (and that this port did not send)."""
        out = []
        deadline = time.monotonic() + wait
        while (frame := self.next(max(0.0, deadline - time.monotonic()))) is not None:
            if frame.src != self.mac:
                out.append(frame)
        return out

    def next(self, wait: float) -> Caught | None:
        """The next probe frame to arrive within ``wait`` seconds, if any."""
        deadline = time.monotonic() + wait
        while select.select([self.sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
            data, ancdata, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(AUXDATA.size))
            vlan = None
            for level, kind, value in ancdata:
                if level == SOL_PACKET and kind == PACKET_AUXDATA:
                    status, *_, tci, _tpid = AUXDATA.unpack(value[:AUXDATA.size])
                    if status & TP_STATUS_VLAN_VALID:
                        vlan = tci & 0xFFF
            ethertype = struct.unpack("!H", data[12:14])[0]
            body = data[14:]
            if ethertype == TPID:  # a tag the NIC left in the frame
                vlan = struct.unpack("!H", data[14:16])[0] & 0xFFF
                ethertype = struct.unpack("!H", data[16:18])[0]
                body = data[18:]
            if ethertype == PROBE_TYPE:
                return Caught(data[6:12].hex(":"), vlan, body.rstrip(b"\0"))
        return None
