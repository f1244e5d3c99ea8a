"""Power through a BMC over IPMI 2.0 (RMCP+ lanplus), with pyghmi's client.

pyghmi's calls block and, against a BMC that has gone silent, can wait far
longer than a controller may; every call here runs under a hard deadline
(``settings.timeout``) and a session that failed is retired, so the next
call logs in afresh (a BMC that came back, or rebooted, is reached again).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from pydantic import Field
from pyghmi import exceptions as pyghmi_exc
from pyghmi.ipmi import command
from pyghmi.ipmi.private import session as pyghmi_session

from voe.domain.models import Host
from voe.drivers.base import BootDevice, DriverSettings, PowerDriver, PowerState
from voe.drivers.power import pyghmi_mends  # noqa: F401 - mends pyghmi's shared I/O before any session
from voe.errors import DriverError, DriverTimeout

_BOOTDEV = {"pxe": "network", "disk": "hd"}
_FROM_BOOTDEV = {"network": "pxe", "hd": "disk"}

IDLE_RELOGIN = 30.0  # seconds: a session idle longer is replaced before use


class _Pace:
    """How long an open session waits before its call goes again on a new
    login. A BMC that restarted (a power loss, a firmware reset) silently
    drops the sessions it no longer knows, and a fixed wait long enough
    for a busy BMC would make a failover's short cross-check read such a
    BMC as silent. So a quiet controller gives an open session
    ``PATIENCE_FACTOR`` times what calls on open sessions take lately
    (never less than ``MIN_PATIENCE``, never more than ``MAX_PATIENCE``).
    Calls that logged in first are not counted: logins to BMCs just
    restarted are slow, and would raise every open session's patience. A
    busy one (more than ``QUIET_CALLS`` calls in flight: a group start)
    gives it the whole timeout: answers then take tenths of a second, and
    every login again costs the BMC a handshake while it is busiest."""

    def __init__(self) -> None:
        self._typical = 0.02  # seconds, a moving average of answered calls
        self._in_flight = 0
        self._lock = threading.Lock()

    def began(self) -> None:
        with self._lock:
            self._in_flight += 1

    def ended(self, seconds: float | None) -> None:
        """``seconds``: how long an answered call on an open session took
        (None: no answer, or it logged in first)."""
        with self._lock:
            self._in_flight -= 1
            if seconds is not None:
                self._typical += PACE_WEIGHT * (seconds - self._typical)

    def patience(self, timeout: float) -> float:
        with self._lock:
            if self._in_flight > QUIET_CALLS:
                return timeout
            return min(timeout, MAX_PATIENCE, max(MIN_PATIENCE, PATIENCE_FACTOR * self._typical))

    def login_patience(self, left: float) -> float:
        """How long a call that logs in first waits before logging in again,
        with ``left`` seconds of its timeout to go: ``LOGIN_PATIENCE`` while
        quiet and at least twice that is left, else all of it."""
        with self._lock:
            busy = self._in_flight > QUIET_CALLS
        return left if busy or left < 2 * LOGIN_PATIENCE else LOGIN_PATIENCE


MIN_PATIENCE = 0.3  # seconds
MAX_PATIENCE = 1.0  # seconds
LOGIN_PATIENCE = 1.0  # seconds: a lab BMC logs in within milliseconds, a real one within a few hundred
RETRY_PAUSE = 0.05  # seconds, times the tries so far: between logins after a transient failure
PATIENCE_FACTOR = 4
PACE_WEIGHT = 0.1
QUIET_CALLS = 8
_PACE = _Pace()


class _Retired(pyghmi_exc.IpmiException):
    """A call found its session retired by another call's failure: sent
    again on a new login, not counted against the BMC."""


class IpmiSettings(DriverSettings):
    address: str
    port: int = Field(default=623, ge=1, le=65535)
    username: str = ""
    password: str = Field(default="", json_schema_extra={"secret": True})


def _abandon_login(s: IpmiSettings) -> None:
    """A login to this BMC that a call gave up waiting for lives on inside
    pyghmi (in its table of sessions being set up, then among the BMC's
    sessions while it retries), and pyghmi hands it, half made, to the next
    client, which then fails with it: break every such login."""
    user, password = s.username.encode(), s.password.encode()
    in_flight = [pyghmi_session.Session.initting_sessions.pop((s.address, user, password, s.port, None), None)]
    for sessions in list(pyghmi_session.Session.bmc_handlers.values()):
        in_flight += [x for x in list(sessions.values())
                      if getattr(x, "bmc", None) == s.address and getattr(x, "port", None) == s.port
                      and getattr(x, "userid", None) == user and x.logging and not x.logged]
    for session in in_flight:
        if session is not None:
            _break(session)


def _break(session) -> None:
    """Mark a pyghmi session dead with plain attribute writes: pyghmi's own
    ``_mark_broken`` takes its global locks, and from a caller's thread
    while its I/O thread is sending on the session, the two deadlock (seen:
    two fences hung for minutes). Broken, pyghmi drops the session from its
    cache at the next lookup, and a call waiting on it returns."""
    session.logged = 0
    session.logging = False
    session.onlogpayload = None
    session.lastpayload = None
    session.broken = True


class _Link:
    """One pyghmi session and the lock that keeps its calls one at a time.
    A link that failed is retired whole: calls still queued on it give up,
    and the next call opens a new link rather than waiting behind a call
    that may block for seconds inside pyghmi."""

    def __init__(self, settings: IpmiSettings):
        self.settings = settings
        self.lock = threading.Lock()
        self.cmd: command.Command | None = None
        self.retired = False
        self.used = time.monotonic()

    def stale(self) -> bool:
        return self.cmd is not None and time.monotonic() - self.used > IDLE_RELOGIN

    def run(self, fn):
        with self.lock:
            if self.retired:
                raise _Retired("session retired after a failure")
            self.used = time.monotonic()
            if self.cmd is None:
                # as bytes: pyghmi keys its shared sessions by the encoded
                # credentials on lookup and removal but by the caller's on
                # insertion, so text credentials make a second client of the
                # same BMC wait forever on the first one's session
                s = self.settings
                _abandon_login(s)  # one left by a call that gave up on it
                self.cmd = command.Command(s.address, s.username.encode(), s.password.encode(), port=s.port,
                                           keepalive=False)
            return fn(self.cmd)

    def retire(self) -> None:
        """Broken, the session leaves pyghmi's shared cache (the next
        client logs in afresh: a BMC that restarted no longer knows it) and
        a call still waiting on it inside pyghmi returns at once. No logout
        is sent, and nothing here waits: the BMC may not be answering, and a
        logout would queue behind the very call being given up on (the BMC
        expires the session itself)."""
        self.retired = True
        session = getattr(self.cmd, "ipmi_session", None)
        if session is None:
            _abandon_login(self.settings)
        else:
            _break(session)


class IpmiPower(PowerDriver):
    Settings = IpmiSettings

    def __init__(self, device: str, settings: IpmiSettings):
        super().__init__(device, settings)
        self._link = _Link(settings)

    @classmethod
    def from_host(cls, host: Host) -> IpmiPower:
        b = host.bmc
        return cls(host.name, IpmiSettings(address=b.address, port=b.effective_port(), username=b.username,
                                           password=b.password or ""))

    def _retire(self, link: _Link) -> None:
        if self._link is link:
            self._link = _Link(self.settings)
        link.retire()

    def _call(self, operation: str, fn):
        """Run ``fn(session)`` under the deadline; failures are typed.

        A session already open gets ``_Pace.patience`` to answer: a
        BMC that restarted since (a firmware reset, a repair) no longer
        knows it and stays silent, so the call is sent again on a new
        login, within the whole timeout. A login silent for
        ``_Pace.login_patience`` is given up and made again: a BMC may drop
        a login's packet, or still hold the client's previous session (in
        the lab, one fresh login in a few hundred heard nothing for 3 s:
        the lab's BMCs had forgotten it, since mended). So is a
        call whose session another call's failure retired (a fence's
        power-off behind a cross-check that gave up on the same BMC). The
        commands here are idempotent (power on/off, boot device, status)
        but for reset, which a machine survives twice."""
        link = self._link
        if link.stale():
            # a BMC drops a session idle this long (60 s is usual): log in
            # afresh rather than discover it at the first call
            self._retire(link)
            link = self._link
        if link.cmd is not None:
            try:
                return self._attempt(operation, link, fn, _PACE.patience(self.settings.timeout))
            except DriverError:
                link = self._link  # retired by the attempt: a fresh login
        deadline = time.monotonic() + self.settings.timeout
        tries = 0
        while True:
            patience = _PACE.login_patience(deadline - time.monotonic())
            try:
                return self._attempt(operation, link, fn, patience)
            except DriverError as e:
                # silent, or cut short by another call's failure on the same
                # session: again on a new login while time is left
                left = deadline - time.monotonic()
                if not e.transient or left < MIN_PATIENCE:
                    if isinstance(e, DriverTimeout):
                        raise DriverTimeout(self.device, operation, self.settings.timeout) from None
                    raise
                tries += 1
                time.sleep(min(RETRY_PAUSE * tries, left / 2))
                link = self._link

    def _attempt(self, operation: str, link: _Link, fn, timeout: float):
        """One call under a hard deadline, on a thread of its own: the
        deadline runs from the call, not from a place in a queue (with a
        pool of 32, a group start's 60 root servers queued, and the last
        timed out waiting for a worker, not for their BMCs). A thread
        costs microseconds against a BMC's milliseconds."""
        future: Future = Future()

        began = time.monotonic()
        open_session = link.cmd is not None

        def run() -> None:
            answered = None
            try:
                future.set_result(link.run(fn))
                if open_session:
                    answered = time.monotonic() - began
            except BaseException as e:
                future.set_exception(e)
            finally:
                _PACE.ended(answered)

        _PACE.began()
        future.set_running_or_notify_cancel()
        threading.Thread(target=run, name=f"ipmi-{self.device}", daemon=True).start()
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            self._retire(link)
            raise DriverTimeout(self.device, operation, timeout) from None
        except pyghmi_exc.IpmiException as e:
            self._retire(link)
            # pyghmi raises IpmiException(None) when its session timed out
            text = str(e) if str(e) not in ("", "None") else f"no answer from the BMC within {timeout:g} s"
            transient = isinstance(e, _Retired) or "timeout" in text.lower() or "no answer" in text
            raise DriverError(self.device, operation, text, transient=transient) from None
        except OSError as e:
            self._retire(link)
            raise DriverError(self.device, operation, str(e), transient=True) from None
        except AttributeError as e:
            if "'Session' object" not in str(e):
                raise
            # pyghmi's Session, given up during a login the BMC never
            # answered, can fail on an attribute it never set ('errormsg')
            # instead of raising IpmiException (seen with a BMC whose power
            # was lost, as a fence's power-off reached it)
            self._retire(link)
            raise DriverError(self.device, operation, f"no answer from the BMC (pyghmi: {e})", transient=True) from None

    def check(self) -> str:
        state = self.power_state()
        return f"IPMI {self.settings.address}:{self.settings.port} as {self.settings.username}: power {state.value}"

    def _power_on(self) -> None:
        self._call("power on", lambda c: c.set_power("on"))

    def _power_off(self) -> None:
        self._call("power off", lambda c: c.set_power("off"))

    def _soft_off(self) -> None:
        self._call("soft off", lambda c: c.set_power("shutdown"))

    def _reset(self) -> None:
        self._call("reset", lambda c: c.set_power("reset"))

    def _power_on_or_reset(self) -> None:
        """pyghmi's "boot": it reads the power state and sends on or reset,
        in one call on the session."""
        self._call("power on or reset", lambda c: c.set_power("boot"))

    def _get_power_state(self) -> PowerState:
        r = self._call("power status", lambda c: c.get_power())
        return PowerState(r["powerstate"])

    def _set_boot_device(self, device: BootDevice, persistent: bool) -> None:
        self._call(f"set boot device {device}", lambda c: c.set_bootdev(_BOOTDEV[device], persist=persistent))

    def _get_boot_device(self) -> tuple[BootDevice | None, bool]:
        r = self._call("get boot device", lambda c: c.get_bootdev())
        return _FROM_BOOTDEV.get(r.get("bootdev")), bool(r.get("persistent"))
