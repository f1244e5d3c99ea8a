"""The lab switch's forwarding plane (``voe.lab.ovs``: Open vSwitch's
userspace datapath following the switch's SNMP state): how many frames a
second and Mbit/s it forwards between two ports in one VLAN, and how much
latency one switch hop adds.

    python bench/dataplane.py [--seconds 3]

Needs root (the lab's network namespace) and Open vSwitch. The two ends
are veths on access ports of VLAN 100, as a KVM machine's tap is: one
process sends raw frames as fast as it can while this one counts what
arrives. The hop's latency is half the difference between the round trip
of one frame through the switch and over a bare veth pair, both measured
the same way (a Python echo on raw sockets), so what the benchmark itself
costs cancels out."""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from frames import Port
from voe.lab.netns import LabNetwork
from voe.lab.ovs import OvsPlane
from voe.lab.switch_state import CREATE_AND_GO, SwitchState

BLAST = """
import socket, sys, time
iface, dst, src = sys.argv[1], bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
size, seconds = int(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
frame = (dst + src + b"\\x88\\xb5").ljust(size, b"\\0")
sent, end = 0, time.monotonic() + seconds
while time.monotonic() < end:
    for _ in range(256):
        try:
            s.send(frame)
            sent += 1
        except OSError:
            pass
print(sent)
"""


def rate(network: LabNetwork, sender: Port, receiver: Port, size: int, seconds: float) -> tuple[float, float, float]:
    """(frames/s arrived, Mbit/s arrived, share of sent frames that arrived)."""
    receiver.drain()
    blast = subprocess.Popen(network.command([sys.executable, "-c", BLAST, sender.interface,
                                              receiver.mac.replace(":", ""), sender.mac.replace(":", ""),
                                              str(size), str(seconds)]), stdout=subprocess.PIPE, text=True)
    got = 0
    end = time.monotonic() + seconds + 0.5
    while time.monotonic() < end:
        if select.select([receiver.sock], [], [], 0.1)[0]:
            while True:
                try:
                    receiver.sock.recv(65536)
                    got += 1
                except BlockingIOError:
                    break
    sent = int(blast.communicate()[0])
    return got / seconds, got * size * 8 / seconds / 1e6, got / max(sent, 1)


def round_trip(a: Port, b: Port, rounds: int) -> float:
    """The median time, in µs, for a frame from ``a`` to reach ``b`` and
    ``b``'s answer to come back."""
    stop = threading.Event()

    def echo() -> None:
        while not stop.is_set():
            frame = b.next(0.1)
            if frame is not None and frame.src == a.mac:
                b.send(frame.payload, a.mac)

    t = threading.Thread(target=echo, daemon=True)
    t.start()
    times = []
    for i in range(rounds):
        payload = f"probe {i}".encode()
        began = time.perf_counter()
        a.send(payload, b.mac)
        while (frame := a.next(max(0.0, began + 1.0 - time.perf_counter()))) is not None:
            if frame.payload == payload and frame.src == b.mac:
                times.append((time.perf_counter() - began) * 1e6)
                break
    stop.set()
    t.join()
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=2000)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("dataplane: needs root (the lab's network namespace)")
    network = LabNetwork(f"voe-lab-{os.getpid()}", "10.79.0.0/24")
    network.create()
    plane = OvsPlane(network, Path(tempfile.mkdtemp(prefix="voe-dataplane-")))
    try:
        plane.start()
        state = SwitchState("sw1", ["1", "2"])
        with state.change():
            state.set_row_status(100, CREATE_AND_GO)
            state.set_untagged(100, {1, 2})
        bridge = plane.add_switch(state)
        for i in (1, 2):
            network.add_veth(f"p{i}", f"h{i}")
            bridge.attach(i, f"p{i}")
        network.add_veth("d1", "d2")  # the bare pair, for the latency baseline
        h1, h2 = Port(network, "h1", "02:00:5e:00:01:01"), Port(network, "h2", "02:00:5e:00:01:02")
        d1, d2 = Port(network, "d1", "02:00:5e:00:02:01"), Port(network, "d2", "02:00:5e:00:02:02")
        print("lab switch (Open vSwitch userspace datapath), two access ports in VLAN 100, one hop")
        for size in (64, 1514):
            fps, mbit, share = rate(network, h1, h2, size, args.seconds)
            print(f"  {size:5d}-byte frames: {fps:10,.0f} frames/s  {mbit:8.1f} Mbit/s  ({share:.0%} of those sent)")
        through = round_trip(h1, h2, args.rounds)
        bare = round_trip(d1, d2, args.rounds)
        print(f"  round trip through the switch {through:.0f} µs, over a bare veth pair {bare:.0f} µs "
              f"(median of {args.rounds}): {(through - bare) / 2:.0f} µs added per hop")
    finally:
        plane.stop()
        network.delete()


if __name__ == "__main__":
    main()
