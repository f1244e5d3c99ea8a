"""Drivers run in a process of their own, the controller asking them over
a pipe: BMC power drivers in the controller's power process, and the device
watches' probes of switches and hypervisors in its probe process. This is
the controller's end; ``driver_host`` is the process's.

Why apart: pyghmi serves every IPMI session of a process from one I/O
thread, and each of a call's exchanges wakes that thread and then the
caller; in a busy controller each wake waits for the interpreter lock. In
a process of its own a session's I/O competes only with other BMC calls,
on another core, and the controller's share of a call is one message each
way. Probes go to a process of their own (not the power process, whose
BMC bursts must not delay them) so that a live switch never looks slow.

The driver classes are the usual ones (``ipmi``, ``redfish``, or a
vendor's), built in the process from the same settings; only their
primitive calls (``_power_on``, ``_get_power_state`` ...) cross the pipe.
The read-back discipline of ``PowerDriver`` stays in the controller, so
evidence is still what the device read, and a fence's power-off queues
behind an earlier call to the same BMC in the same order (one driver per
BMC, its own lock). Failures cross as the typed errors they were. The
process ends when its pipe closes: a controller that exits, or is killed,
takes it along; one that dies under the controller is started again at the
next call, the calls it held failing as transient.
"""

from __future__ import annotations

import itertools
import multiprocessing
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from voe.drivers.base import BootDevice, PowerDriver, PowerState
from voe.errors import DriverError, DriverTimeout

GRACE = 2.0
"""Seconds the controller waits beyond a call's own bound (the driver's
timeout, times its attempts) before it gives up on the process; a
call the process cannot begin within this long of its sending is
dropped unbegun, so that no call goes out to a BMC after the controller
gave up on it (a power-on after the fence that followed)."""

PREPARE_WITHIN = 15.0
"""Seconds a probe's driver may take to be built in a process just
started (an interpreter, its imports, an SNMP engine), on a machine busy
with a failover."""


class DriverProcess:
    """The controller's end: one child process, started at the first call
    (or by ``start``) and again after it died."""

    def __init__(self, warm: tuple[str, ...] = ()) -> None:
        """``warm``: driver concerns (``power``, ``switch``...) whose drivers
        the process imports as soon as it starts, not at its first call: a
        controller restarted in a failover fences, and hears its switches,
        within its first second."""
        self.warm = warm
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._ids = itertools.count()
        self._pending: dict[int, tuple[Future, str, str, object]] = {}  # call -> future, device, operation, pipe
        self._proc = None
        self._conn = None

    def start(self) -> None:
        with self._lock:
            self._ensure()

    def _ensure(self) -> None:
        """A new interpreter (``python -m`` this module), not a fork: a fork
        of a threaded controller could copy a lock some thread held, and
        the child must not share pyghmi's state with this process."""
        if self._proc is not None and self._proc.poll() is None:
            return
        ours, theirs = multiprocessing.Pipe()
        proc = subprocess.Popen([sys.executable, "-m", "voe.drivers.driver_host", str(theirs.fileno()), *self.warm],
                                pass_fds=(theirs.fileno(),),
                                start_new_session=True)  # a terminal's Ctrl-C is the controller's; the pipe ends this
        theirs.close()
        self._proc, self._conn = proc, ours
        threading.Thread(target=self._read, args=(ours,), name="voe-driver-replies", daemon=True).start()

    def call(self, cls: type[PowerDriver] | None, device: str, settings: dict, op: str, args: tuple, wait: float,
             begin_within: float | None = None):
        """``cls(device, settings).op(*args)`` in the process (no ``cls``:
        a ``probe``, whose driver is built from the inventory entry); its
        result, or the DriverError it raised. It is dropped unbegun if the
        process cannot begin it within ``begin_within`` (``GRACE``)."""
        future: Future = Future()
        with self._lock:
            self._ensure()
            call_id = next(self._ids)
            conn = self._conn
            self._pending[call_id] = (future, device, operation(op), conn)
        try:
            with self._send_lock:
                begin_by = time.monotonic() + (GRACE if begin_within is None else begin_within)
                conn.send((call_id, begin_by, cls and cls.__module__, cls and cls.__qualname__,
                           device, settings, op, args))
        except (OSError, ValueError):
            self._pending.pop(call_id, None)
            raise DriverError(device, operation(op), "its driver process is not answering", transient=True) from None
        try:
            return future.result(timeout=wait)
        except FutureTimeout:
            self._pending.pop(call_id, None)
            raise DriverTimeout(device, operation(op), wait) from None

    def probe(self, kind: str, device: str, spec: dict, timeout: float) -> str:
        """A probe of the switch or hypervisor host whose inventory entry is
        ``spec`` (``kind``: switch | hypervisor): its driver's ``check``,
        with ``timeout`` and no retries."""
        return self.call(None, device, spec, "probe", (kind, timeout), timeout + GRACE)

    def prepare_probe(self, kind: str, device: str, spec: dict, timeout: float) -> None:
        """The probe's driver built there (the process started first if it
        is not running), so that a probe's time is the device's answer
        alone: a switch whose first probe waited for a process starting
        and its SNMP engine looked slow, then doubtful, to a controller
        just restarted, and its fences tried the fabric last."""
        self.call(None, device, spec, "prepare", (kind, timeout), PREPARE_WITHIN, begin_within=PREPARE_WITHIN)

    def _read(self, conn) -> None:
        """Hand each reply to its caller; when the process dies, fail every
        call it held (transient: the next call starts it again)."""
        while True:
            try:
                call_id, ok, value = conn.recv()
            except (EOFError, OSError):
                break
            held = self._pending.pop(call_id, None)
            if held is None:
                continue  # its caller gave up waiting
            future = held[0]
            if ok:
                future.set_result(value)
            else:
                future.set_exception(_rebuilt(*value))
        with self._lock:
            if self._conn is conn:
                self._proc = self._conn = None
            lost = [i for i, held in self._pending.items() if held[3] is conn]
            lost = [self._pending.pop(i) for i in lost]
        for future, device, what, _ in lost:
            future.set_exception(DriverError(device, what, "its driver process exited", transient=True))

    def close(self) -> None:
        """Closing the pipe ends the process (see ``driver_host``)."""
        with self._lock:
            conn, proc, self._conn, self._proc = self._conn, self._proc, None, None
        if conn is not None:
            # shut down, not only closed: the reply thread, blocked reading,
            # holds the socket open until its read returns
            with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.shutdown(socket.SHUT_RDWR)
            conn.close()
        if proc is not None:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None


class RemotePower(PowerDriver):
    """A BMC's power driver whose calls run in the power process: the
    controller's stand-in for the real driver, with its settings."""

    def __init__(self, real: PowerDriver, process: DriverProcess):
        super().__init__(real.device, real.settings)
        self._cls = type(real)
        self._process = process

    @property
    def driver_name(self) -> str:
        return self._cls.__name__

    def _ask(self, op: str, *args):
        s = self.settings
        return self._process.call(self._cls, self.device, s.model_dump(), op, args,
                                  s.timeout * (1 + s.retries) + GRACE)

    def check(self) -> str:
        return self._ask("check")

    def close(self) -> None:
        try:
            self._ask("close")
        except DriverError:
            pass  # the process is gone, and the driver with it

    def _power_on(self) -> None:
        self._ask("_power_on")

    def _power_off(self) -> None:
        self._ask("_power_off")

    def _soft_off(self) -> None:
        self._ask("_soft_off")

    def _reset(self) -> None:
        self._ask("_reset")

    def _power_on_or_reset(self) -> None:
        self._ask("_power_on_or_reset")

    def _get_power_state(self) -> PowerState:
        return self._ask("_get_power_state")

    def _set_boot_device(self, device: BootDevice, persistent: bool) -> None:
        self._ask("_set_boot_device", device, persistent)

    def _get_boot_device(self) -> tuple[BootDevice | None, bool]:
        return self._ask("_get_boot_device")


class RemoteProbe:
    """A device watch's probe driver whose ``check`` runs in the probe
    process; ``spec`` is the device's inventory entry (a switch, or a host
    with a hypervisor), dumped once here and sent with every probe."""

    def __init__(self, kind: str, entry, timeout: float, process: DriverProcess):
        self.device = entry.name
        self._kind, self._timeout, self._process = kind, timeout, process
        self._spec = entry.model_dump(mode="json")

    def check(self) -> str:
        return self._process.probe(self._kind, self.device, self._spec, self._timeout)

    def prepared(self) -> RemoteProbe:
        self._process.prepare_probe(self._kind, self.device, self._spec, self._timeout)
        return self

    def close(self) -> None:
        """Nothing here: the process closes its driver when a probe brings a
        changed entry, or when it ends."""


def operation(op: str) -> str:
    """A primitive's name as an error says it: ``_power_on`` -> power on."""
    return op.strip("_").replace("_", " ")


def _rebuilt(kind: str, device: str, what: str, cause: str, transient: bool) -> DriverError:
    if kind == "timeout":
        e = DriverTimeout(device, what, 0)
        e.cause = cause
        return e
    return DriverError(device, what, cause, transient)
