"""A lab BMC: IPMI 2.0 over RMCP+ (lanplus) through pyghmi's BMC server, one
UDP port per host. Like virtualbmc, each IPMI operation maps to one machine
call; this file reads as that table.

Cipher suites: pyghmi's server implements suite 3 (HMAC-SHA1 / HMAC-SHA1-96 /
AES-CBC-128) and advertises only that. ipmitool reads the list and picks 3;
pyghmi's client instead proposes suite 17 (SHA-256) first and, when the BMC
accepts the session anyway, computes its RAKP hashes with SHA-256 while the
server uses SHA-1. A real BMC that lacks SHA-256 refuses such an open-session
request with status 0x11 ("invalid authentication algorithm", IPMI 2.0 table
13-15); so does this one, and pyghmi's client then retries with suite 3.

Sessions: pyghmi's server keeps one session per client address and BMC, in
a table shared by every BMC of the process. A client that starts again on a
port it already holds a session from (a login after a failed call: its first
packet is a sessionless IPMI 1.5 "get channel authentication capabilities")
makes pyghmi's server forget the sessions of *every* BMC with that client
address, and a controller's client sends to hundreds of BMCs from one port:
each of its open sessions then went silent at once, every call waited out
its timeout, and each new login forgot them all again (a group start's
power-ons timed out by the dozen). A real BMC tells sessions apart by their
ID; this one forgets only its own session with that client.
"""

from __future__ import annotations

import errno
import logging
import threading
import time

from pyghmi.ipmi import bmc as pyghmi_bmc
from pyghmi.ipmi.private import serversession
from pyghmi.ipmi.private import session as ipmisession

from voe.drivers.power import pyghmi_mends  # noqa: F401 - mends pyghmi's shared I/O before any BMC
from voe.lab.machine import Machine

log = logging.getLogger("voe.lab.bmc")

RMCP_PLUS_OPEN_SESSION = 16        # payload type, IPMI 2.0 table 13-16
AUTH_HMAC_SHA1 = 1                 # authentication algorithm, table 13-17
INVALID_AUTH_ALGORITHM = 0x11      # RMCP+ status code, table 13-15
IPMI15_NO_AUTH, IPMI15_MD5 = 0, 2  # session header auth types of IPMI 1.5 packets, table 13-2
BOOT_PARAM_FLAGS = 5               # system boot options parameter 5, table 28-14
DEVICE_PXE, DEVICE_DISK = 1, 2     # boot device selector (bits 5:2 of flags byte 2)
FLAG_VALID, FLAG_PERSISTENT = 0x80, 0x40
CHASSIS_OFF, CHASSIS_ON, CHASSIS_CYCLE, CHASSIS_RESET, CHASSIS_DIAG, CHASSIS_SOFT = range(6)


class _LabSession(serversession.ServerSession):
    def create_open_session_response(self, request):
        auth_algorithm = request[12] & 0b111111
        if auth_algorithm != AUTH_HMAC_SHA1:
            return bytearray([request[0], INVALID_AUTH_ALGORITHM, 0, 0]) + request[4:8]
        return super().create_open_session_response(request)

    def _handle_ipmi_packet(self, data, sockaddr=None, qent=None):
        if data[4] in (IPMI15_NO_AUTH, IPMI15_MD5) and not any(data[5:13]):
            # sequence number and session ID zero: this client starting again
            ours = ipmisession.Session.bmc_handlers.get(sockaddr, {})
            if ours.get(self.bmc.port) is self:
                del ours[self.bmc.port]
            self.bmc.sessionless_data(data, sockaddr)
            return None
        return super()._handle_ipmi_packet(data, sockaddr, qent)


class LabBmc(pyghmi_bmc.Bmc):
    """IPMI chassis commands -> machine calls."""

    def __init__(self, machine: Machine, username: str, password: str, address: str, port: int):
        super().__init__({username: password}, port=port, address=address)
        self.machine = machine

    def sessionless_data(self, data, sockaddr):
        raw = bytearray(data)
        if len(raw) >= 22 and raw[0] == 6 and raw[2:4] == b"\xff\x07" and raw[4] == 6 and raw[5] == RMCP_PLUS_OPEN_SESSION:
            _LabSession(self.authdata, self.kg, sockaddr, self.serversocket, raw[16:], self.uuid, bmc=self)
            return
        super().sessionless_data(data, sockaddr)

    # --- the table ----------------------------------------------------------

    def get_power_state(self):
        return self.machine.power_state()

    def power_on(self):
        self.machine.power_on()

    def power_off(self):
        self.machine.power_off()

    def power_cycle(self):
        self.machine.power_off()
        self.machine.power_on()

    def power_reset(self):
        self.machine.reset()

    def power_shutdown(self):
        self.machine.soft_off()

    def control_chassis(self, request, session):
        if not self.machine.bmc_up:
            return  # a dead BMC says nothing
        super().control_chassis(request, session)

    def get_system_boot_options(self, request, session):
        if request["data"][0] != BOOT_PARAM_FLAGS:
            return session.send_ipmi_response(code=0x80)  # parameter not supported
        device, persistent = self.machine.boot_device()
        selector = {"pxe": DEVICE_PXE, "disk": DEVICE_DISK}.get(device, 0)
        flags = (FLAG_VALID if selector else 0) | (FLAG_PERSISTENT if persistent else 0)
        session.send_ipmi_response(data=[1, BOOT_PARAM_FLAGS, flags, selector << 2, 0, 0, 0])

    def set_system_boot_options(self, request, session):
        data = request["data"]
        if data[0] != BOOT_PARAM_FLAGS:
            return session.send_ipmi_response()  # set-in-progress, info acks: accepted, not modelled
        selector = (data[2] >> 2) & 0b1111
        device = {DEVICE_PXE: "pxe", DEVICE_DISK: "disk"}.get(selector)
        if selector and device is None:
            return session.send_ipmi_response(code=0xCC)  # invalid data field
        self.machine.set_boot(device, bool(data[1] & FLAG_PERSISTENT))
        session.send_ipmi_response()


class BmcLoop:
    """pyghmi's sessions share one select loop per process; this thread
    runs it for every lab BMC."""

    def __init__(self) -> None:
        self.thread = threading.Thread(target=self._run, name="lab-ipmi", daemon=True)
        self._stop = threading.Event()
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ipmisession.Session.wait_for_rsp(0.2)
            except Exception as e:
                # pyghmi's server trips on packets that outlive their BMC (a
                # reply queued for a socket just closed, a client's retry
                # landing on a session of the BMC that replaced it); real BMCs
                # drop such packets, and so does this loop
                log.debug("lab IPMI loop dropped a packet: %r", e)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(2)


REBIND_PATIENCE = 1.0  # seconds


def open_bmc(machine: Machine, username: str, password: str, address: str, port: int) -> LabBmc:
    """A BMC on its UDP port. One just closed (``bmc-down`` then
    ``bmc-up``) may hold its port a moment longer: the I/O loop's select()
    keeps the closed socket until its wait ends."""
    deadline = time.monotonic() + REBIND_PATIENCE
    while True:
        try:
            return LabBmc(machine, username, password, address, port)
        except OSError as e:
            if e.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def close_bmc(b: LabBmc) -> None:
    """Stop answering: the socket goes away, as when a BMC loses power."""
    sock = b.serversocket
    ipmisession.Session.bmc_handlers.pop(sock, None)
    try:
        ipmisession.iosockets.remove(sock)
    except (ValueError, AttributeError):
        pass
    sock.close()
