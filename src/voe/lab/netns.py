"""The lab's own network for real machines: a network namespace that the lab
creates and removes, holding a bridge where the services a datacenter has
on its boot and storage network listen (dnsmasq, nfs-ganesha, tgt), a tap
per machine NIC, and the lab switches that forward between them
(``voe.lab.ovs``). Nothing in it is routed anywhere:
every frame stays on this machine.

Machines may boot from other networks (VLANs) than that one: each has a
segment, a bridge of its own holding its gateway's address, where dnsmasq
answers too. The namespace is then what a datacenter's router is to those
networks: machines reach the services and the controllers through it at
the lab network's addresses, but it forwards nothing from one network to
another (IP forwarding stays off), so that networks a persona does not
share stay apart.

The controllers run outside, on loopback. Machines reach them at the
bridge's own address (the address controllers publish to machines, e.g.
``--public-boot-url http://10.77.0.1:8480``) through forwarders: a socket
listening inside the namespace on each controller port, whose connections
the lab carries to the same port on loopback. A socket keeps the namespace
it was created in, so one thread enters the namespace (``setns``) only to
create it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import os
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(RuntimeError):
    """A namespace, bridge or tap could not be made: the command and its answer."""


def _ip(*args: str) -> str:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {r.stderr.strip() or r.returncode}")
    return r.stdout


def _remove(name: str) -> None:
    """A namespace and every process still inside it."""
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    with contextlib.suppress(NetnsError):
        _ip("netns", "delete", name)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"setns: {os.strerror(err)}")


@dataclass(frozen=True)
class Segment:
    """One boot network's bridge in the lab's namespace."""

    bridge: str
    vlan: int
    subnet: ipaddress.IPv4Network
    ipv6_prefix: ipaddress.IPv6Network


class LabNetwork:
    """One namespace with one bridge at ``gateway`` (the first address of
    ``subnet``), where the lab's services listen and machines' taps join,
    and a segment per further boot network."""

    BRIDGE = "labbr0"
    IPV6_PREFIX = "fd00:766f:65::/48"
    """Where each segment's IPv6 prefix (unique local, a /64) comes from:
    dnsmasq advertises them, so that a firmware's iPXE hears a router and
    boots without waiting."""

    def __init__(self, name: str, subnet: str):
        self.name = name
        self.subnet = ipaddress.IPv4Network(subnet)
        self.gateway = str(next(self.subnet.hosts()))
        self.segments: list[Segment] = []
        self._forwarders: list[asyncio.base_events.Server] = []

    # --- the namespace and its bridge -------------------------------------------

    def create(self, vlan: int = 1) -> None:
        """The namespace, and the lab network's segment on ``vlan``."""
        for stale in Path("/run/netns").glob("voe-lab-*"):
            pid = stale.name.removeprefix("voe-lab-")
            if stale.name == self.name or (pid.isdigit() and not Path(f"/proc/{pid}").exists()):
                _remove(stale.name)  # a lab killed before it could clean up, and what it left running there
        _ip("netns", "add", self.name)
        self.run("link", "set", "lo", "up")
        # off in a new namespace, unless this host's namespaces inherit its
        # own (net.core.devconf_inherit_init_net): said, not assumed
        r = subprocess.run(self.command(["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"]), capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise NetnsError(f"cannot turn IP forwarding off in {self.name}: {r.stderr.strip() or r.returncode}")
        self.add_segment(vlan, self.subnet, self.gateway)

    def add_segment(self, vlan: int, subnet: ipaddress.IPv4Network, gateway: str) -> Segment:
        """A bridge for the boot network ``subnet`` (on ``vlan``), holding its
        ``gateway`` and the next IPv6 prefix; the first is the lab network's
        own."""
        index = len(self.segments)
        bridge = self.BRIDGE if index == 0 else f"labbr{index}"
        prefix = ipaddress.IPv6Network((ipaddress.IPv6Network(self.IPV6_PREFIX).network_address + (index << 64), 64))
        self.run("link", "add", bridge, "type", "bridge", "forward_delay", "0")
        self.run("addr", "add", f"{gateway}/{subnet.prefixlen}", "dev", bridge)
        self.run("addr", "add", f"{prefix.network_address + 1}/{prefix.prefixlen}", "dev", bridge, "nodad")
        self.run("link", "set", bridge, "up")
        segment = Segment(bridge, vlan, subnet, prefix)
        self.segments.append(segment)
        return segment

    def run(self, *args: str) -> str:
        """``ip -n NAMESPACE ARGS``."""
        return _ip("-n", self.name, *args)

    def add_address(self, address: str) -> None:
        """One more address of the lab network on the bridge, for a service
        that has its own (a storage server's, say)."""
        if address != self.gateway:
            self.run("addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", self.BRIDGE)

    def add_tap(self, name: str) -> str:
        """A tap for a machine's NIC, made before QEMU opens it (QEMU runs
        unprivileged of network setup: ``script=no``); the lab's
        forwarding plane (``voe.lab.ovs``) takes it as a switch port."""
        self.run("tuntap", "add", "dev", name, "mode", "tap")
        self.run("link", "set", name, "up")
        return name

    def add_uplink(self, name: str, bridge: str = BRIDGE) -> str:
        """A veth from ``bridge``, where the lab's services are, to a
        switch: returns the switch's end. The bridge's end computes its own
        checksums, since a switch that reads frames from a socket forwards
        them as they are."""
        bridge_end = f"{name}b"
        self.add_veth(name, bridge_end)
        self.run("link", "set", bridge_end, "master", bridge)
        return name

    def add_veth(self, name: str, peer: str) -> None:
        """A veth pair, both ends up, neither offloading its checksums."""
        self.run("link", "add", name, "type", "veth", "peer", "name", peer)
        for end in (name, peer):
            r = subprocess.run(self.command(["ethtool", "-K", end, "tx", "off"]), capture_output=True, text=True)
            if r.returncode != 0:
                raise NetnsError(f"ethtool -K {end} tx off: {r.stderr.strip() or r.returncode}")
            self.run("link", "set", end, "up")

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def delete(self) -> None:
        """The namespace goes, and with it its bridge, taps and addresses
        (processes still inside keep only their loopback)."""
        with contextlib.suppress(NetnsError):
            _ip("netns", "delete", self.name)

    # --- sockets inside -------------------------------------------------------------

    def open_socket(self, family: int, kind: int, proto: int = 0) -> socket.socket:
        """A socket of the namespace's network (one thread enters it to
        make the socket; the caller's namespace does not change)."""
        made: list[socket.socket | BaseException] = []

        def inside() -> None:
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            there = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
            try:
                _setns(there)
                try:
                    made.append(socket.socket(family, kind, proto))
                finally:
                    _setns(home)
            except BaseException as e:
                made.append(e)
            finally:
                os.close(home)
                os.close(there)

        t = threading.Thread(target=inside, name="lab-netns-socket")
        t.start()
        t.join()
        if isinstance(made[0], BaseException):
            raise NetnsError(f"cannot open a socket in {self.name}: {made[0]}")
        return made[0]

    def listen(self, port: int, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket bound to the gateway's ``port`` inside the namespace."""
        s = self.open_socket(socket.AF_INET, kind)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.gateway, port))
            if kind == socket.SOCK_STREAM:
                s.listen(128)
        except OSError as e:
            s.close()
            raise NetnsError(f"cannot listen on {self.gateway}:{port} in {self.name}: {e}") from None
        return s

    async def forward(self, port: int) -> None:
        """Connections to the gateway's ``port`` inside go to loopback's."""
        server = await asyncio.start_server(lambda r, w: _pipe(r, w, port), sock=self.listen(port))
        self._forwarders.append(server)

    async def close_forwarders(self) -> None:
        for server in self._forwarders:
            server.close()
            await server.wait_closed()
        self._forwarders.clear()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
    try:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        writer.close()
        return

    async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()

    await asyncio.gather(copy(reader, up_w), copy(up_r, writer))
