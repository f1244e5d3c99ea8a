"""pyghmi (1.6.19) keeps one I/O thread, one socket table and two session
tables per process, shared by every IPMI session: the controller's clients
and the lab's BMCs alike. Three faults in that shared machinery, each met
in voe's lab and each worth reporting upstream, and one cost that grows
with the number of sockets, are mended here; importing
this module applies the mends (``voe.drivers.power.ipmi`` and
``voe.lab.bmc`` both do, before any session exists).
"""

from __future__ import annotations

import select
import socket
import sys
import time

from pyghmi.ipmi import command as pyghmi_command
from pyghmi.ipmi.private import session as pyghmi_session
from pyghmi.ipmi.private import util as pyghmi_util


# 1. Sockets flipped between blocking and non-blocking by several threads.
# pyghmi's sender sets a socket blocking before each send, and its I/O
# thread sets it non-blocking before each read of a socket select() found
# readable; a send from another thread in between leaves the read blocking
# on an empty socket, and the process's whole IPMI I/O stops until a packet
# happens to arrive there. With 200 lab BMCs and a few concurrent clients
# it happened within seconds (data piled up unread on the other sockets,
# every call "no answer within 3 s"). The mended pair never changes a
# socket's mode: a read asks not to wait with a per-call flag; a UDP send
# does not wait for long either way.
def _send(mysocket, packet, sockaddr):
    try:
        mysocket.sendto(packet, sockaddr)
    except OSError:
        pass  # as pyghmi: a lost datagram is a retransmit's business


def _receive(mysocket, size):
    try:
        return mysocket.recvfrom(size, socket.MSG_DONTWAIT)
    except OSError:  # nothing queued (EAGAIN), or the socket just closed
        return None


pyghmi_session._io_sendto = _send
pyghmi_session._io_recvfrom = _receive


# 2. A reply handled before its waiter waits. pyghmi waits for a reply by
# registering with its I/O thread after sending the request, and any
# thread waiting in pyghmi handles the packets queued for any session. A
# reply that the I/O thread queued, or that another caller's thread already
# handled, before the waiter registered wakes no one, and the waiter sleeps
# until its retransmit timer (0.5 s plus up to 0.5 s of jitter) with its
# answer in hand, most often under concurrent logins. Lowering the timer instead floods a busy BMC with
# duplicate requests and logins, so the wait itself is wrapped: it lasts
# at most ``WAIT_SLICE`` (pyghmi's callers wait in loops that look again at
# their session and their retransmit timer), and only ``QUEUED_WAIT`` when
# a reply from that BMC is already queued for, or handled by, a live
# session (not zero: a queue another session's caller has yet to drain
# must not make this one spin).
_pyghmi_io_wait = pyghmi_session._io_wait
QUEUED_WAIT = 0.005  # seconds
WAIT_SLICE = 0.05  # seconds


def _answered(session) -> bool:
    if getattr(session, "broken", False):
        return False
    return bool(getattr(session, "pktqueue", None)) or (
        getattr(session, "awaitingresponse", False) and getattr(session, "lastresponse", None) is not None)


def _io_wait_unless_queued(timeout, myaddr=None, evq=None):
    timeout = min(timeout, WAIT_SLICE)
    handlers = pyghmi_session.Session.bmc_handlers.get(myaddr) if myaddr is not None else None
    if handlers and any(_answered(s) for s in list(handlers.values())):
        timeout = min(timeout, QUEUED_WAIT)
    _pyghmi_io_wait(timeout, myaddr, evq)


pyghmi_session._io_wait = _io_wait_unless_queued


# 3. Two locks taken in opposite orders. pyghmi guards its session tables
# with two process-wide locks: a retransmit timer fires with the waiting
# table held and sends, which takes the keepalive table; a send holds the
# keepalive table and registers its wait. Two BMC calls meeting there
# deadlock every IPMI session of the process: every healthy BMC then "does
# not answer", and its server is fenced at the fabric.
# One lock for both tables makes the inversion impossible; both are
# re-entrant and held only around table updates.
pyghmi_session.WAITING_SESSIONS = pyghmi_session.KEEPALIVE_SESSIONS


# 4. Every socket read at every wake. pyghmi's I/O thread waits in select()
# on all its sockets, ignores which ones it reported, and then reads each
# socket until it is empty. A process with one socket per BMC (a lab of
# hundreds) spends most of its IPMI CPU in reads that find nothing. Only
# the sockets that
# select() finds readable now are read; one that becomes readable just
# after is read at the next wake, which the pending data makes immediate.
_pyghmi_graball = pyghmi_session._io_graball


def _graball_readable(mysockets, iowaiters):
    try:
        readable = select.select(mysockets, (), (), 0)[0]
    except (OSError, ValueError):  # a socket closed meanwhile: read every one, as pyghmi does
        readable = mysockets
    return _pyghmi_graball(readable, iowaiters)


pyghmi_session._io_graball = _graball_readable


# 5. A system call to read the clock. pyghmi's monotonic clock predates
# Python 3.3's: ``os.times()``, a times(2) system call returning a tuple,
# in 10-ms ticks. Its I/O thread reads it once per waiting BMC at every
# wake, and each call in flight wakes it every ``WAIT_SLICE``: with many
# calls in flight, reading the clock becomes a large share of its work.
# ``time.monotonic`` is the same clock for pyghmi's purposes (it
# only ever compares its own readings), read without a system call and
# finer. Set before any session exists, in every pyghmi module that holds
# it, so no two readings from different clocks are ever compared.
_pyghmi_clock = pyghmi_util._monotonic_time
for _module in [m for name, m in list(sys.modules.items()) if name.startswith("pyghmi.")]:
    if getattr(_module, "_monotonic_time", None) is _pyghmi_clock:
        _module._monotonic_time = time.monotonic


# 6. The BMC asked who made it before every power command. pyghmi learns a
# BMC's maker (Get Device ID) to pick its OEM handler, and remembers the
# answer only when the maker is one it has a handler for: for any other
# (the generic handler, the lab's BMCs among them) every power status and
# power change was two exchanges, a power-on sequence ten instead of seven.
# The answer cannot change while a session lasts (a BMC replaced or
# reflashed is a new login: ``IpmiPower`` retires failed and idle
# sessions), so a command object asks once.
_pyghmi_oem_init = pyghmi_command.Command.oem_init


def _oem_init_once(self) -> None:
    _pyghmi_oem_init(self)
    if getattr(self, "_oem", None) is not None:
        self._oemknown = True


pyghmi_command.Command.oem_init = _oem_init_once
