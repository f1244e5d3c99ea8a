"""pyghmi waits for a reply by registering with its I/O thread after
sending, and any caller's thread handles any session's replies: a reply
handled before its waiter registered wakes no one. The mended wait never
sleeps long with an answer in hand (in the lab, most of twenty concurrent
logins did, for half a second to a second each). The mended I/O thread
reads only the sockets that have data, and reads the clock without a
system call."""

from __future__ import annotations

import select
import socket
import sys
import time
import types

import pytest
from pyghmi.ipmi.private import session as pyghmi_session

from voe.drivers.power import pyghmi_mends

BMC = ("::ffff:192.0.2.1", 623, 0, 0)


@pytest.fixture
def waits(monkeypatch):
    asked: list[float] = []
    monkeypatch.setattr(pyghmi_mends, "_pyghmi_io_wait", lambda timeout, myaddr=None, evq=None: asked.append(timeout))
    return asked


def with_session(monkeypatch, **state) -> None:
    session = types.SimpleNamespace(broken=False, pktqueue=[], awaitingresponse=False, lastresponse=None)
    vars(session).update(state)
    monkeypatch.setitem(pyghmi_session.Session.bmc_handlers, BMC, {40000: session})


def test_a_waiter_whose_reply_another_thread_handled_does_not_sleep(monkeypatch, waits):
    with_session(monkeypatch, awaitingresponse=True, lastresponse={"netfn": 1, "command": 1, "data": []})
    pyghmi_session._io_wait(1.0, BMC)
    assert waits == [pyghmi_mends.QUEUED_WAIT]


def test_a_waiter_whose_reply_is_queued_does_not_sleep(monkeypatch, waits):
    with_session(monkeypatch, pktqueue=[b"reply"])
    pyghmi_session._io_wait(1.0, BMC)
    assert waits == [pyghmi_mends.QUEUED_WAIT]


def test_a_waiter_still_without_a_reply_looks_again_within_a_slice(monkeypatch, waits):
    with_session(monkeypatch, awaitingresponse=True)
    pyghmi_session._io_wait(1.0, BMC)
    pyghmi_session._io_wait(0.01, BMC)
    assert waits == [pyghmi_mends.WAIT_SLICE, 0.01]


def test_a_broken_session_is_no_answer(monkeypatch, waits):
    with_session(monkeypatch, broken=True, pktqueue=[b"reply"])
    pyghmi_session._io_wait(1.0, BMC)
    assert waits == [pyghmi_mends.WAIT_SLICE]


@pytest.fixture
def udp_sockets():
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    yield socks
    for s in socks:
        s.close()


def test_the_io_thread_reads_only_the_sockets_with_data_and_loses_no_packet(monkeypatch, udp_sockets):
    """One socket per BMC (the lab's hundreds): reading every one at every
    wake was most of the lab's IPMI time."""
    read: list = []

    def spy(sock, size):
        read.append(sock)
        return pyghmi_mends._receive(sock, size)

    monkeypatch.setattr(pyghmi_session, "_io_recvfrom", spy)
    quiet, busy, other = udp_sockets
    busy.sendto(b"\x06\x00\xff\x07first", busy.getsockname())
    busy.sendto(b"\x06\x00\xff\x07second", busy.getsockname())
    select.select([busy], [], [], 1)  # delivered: loopback is quick, but not synchronous
    senders = pyghmi_session._io_graball(udp_sockets, {})
    assert senders == [busy.getsockname(), busy.getsockname()]
    assert quiet not in read and other not in read


def test_a_socket_closed_under_the_io_thread_does_not_stop_the_others(udp_sockets):
    closed, busy, _ = udp_sockets
    closed.close()
    busy.sendto(b"\x06\x00\xff\x07packet", busy.getsockname())
    select.select([busy], [], [], 1)
    assert pyghmi_session._io_graball(udp_sockets, {}) == [busy.getsockname()]


def test_pyghmi_times_its_waits_by_one_fine_clock():
    """Its own clock ticked in 10 ms and cost a system call per reading,
    one reading per waiting BMC at every wake of its I/O thread. Every
    pyghmi module reads the same clock, modules imported later included, so
    no two readings of different clocks are compared."""
    import pyghmi.ipmi.console  # noqa: F401 - imported after the mends

    clocks = {m._monotonic_time for name, m in list(sys.modules.items())
              if name.startswith("pyghmi.") and hasattr(m, "_monotonic_time")}
    assert clocks == {time.monotonic}
    first = pyghmi_session._monotonic_time()
    tick = pyghmi_session._monotonic_time()
    while tick == first:  # the clock's step: 10 ms with pyghmi's own
        tick = pyghmi_session._monotonic_time()
    assert tick - first < 0.005


def test_a_session_asks_its_bmc_who_made_it_once():
    """pyghmi remembered the answer only for makers it has a handler for:
    for any other BMC each power status or change cost a second exchange."""
    from pyghmi.ipmi import command

    asked = []
    cmd = object.__new__(command.Command)
    cmd.bmc, cmd._oemknown, cmd._oem = "192.0.2.1", False, None
    cmd._get_device_id = lambda: asked.append(1) or {"manufacturer_id": 65535, "product_id": 1, "device_id": 32,
                                                     "device_revision": 1, "firmware_version": "1.0"}
    cmd.oem_init()
    cmd.oem_init()
    assert len(asked) == 1 and cmd._oem is not None


def test_a_session_broken_inside_pyghmi_is_a_transient_failure_naming_the_bmc(monkeypatch):
    """pyghmi's Session, given up during a login a powerless BMC never
    answered, raised AttributeError ('errormsg') out of a fence's power-off:
    an untyped failure where the BMC had simply not answered."""
    from voe.drivers.power import ipmi
    from voe.errors import DriverError

    def broken(self, fn):
        raise AttributeError("'Session' object has no attribute 'errormsg'")

    monkeypatch.setattr(ipmi._Link, "run", broken)
    power = ipmi.IpmiPower("dl360-1", ipmi.IpmiPower.Settings(address="127.0.0.1", port=9, username="a",
                                                               password="b", timeout=0.3))
    with pytest.raises(DriverError) as e:
        power.power_off()
    assert (e.value.device, e.value.transient) == ("dl360-1", True) and "no answer" in e.value.cause
