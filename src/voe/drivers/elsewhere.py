"""Drivers run in a process of their own, the controller asking them over
a pipe: BMC power drivers in the controller's power process, and the device
watches' probes of switches and hypervisors in its probe process.

Why: pyghmi serves every IPMI session of a process from one I/O thread, and
each of a call's exchanges wakes that thread and then the caller. In a
controller busy with a 1,000-persona group start (its API answering agents,
its reconciler, switch and store threads), each wake waited for the
interpreter lock: a start's BMC sequence (boot device, power, each read
back), 50 ms against an idle controller, took 0.6 to 1.3 s, and a level's
two hundred power-ons queued behind sixteen of them at a time. In a process
of its own the sessions' I/O competes only with other BMC calls, on the
machine's other core, and the controller's share of a call is one message
each way.

Probes, for the same reason: at a thousand personas, twenty switch and
twenty hypervisor probes a second cost the controller a sixth of its CPU
(an SNMP exchange, or an HTTP request, each about 2 ms), and a probe
answered late in a busy controller made a live switch look slow, then
doubtful. In a process of their own (not the power process, whose BMC
bursts must not delay them) their answers come on time, and each costs the
controller one message each way. The probe's driver is built there from the
device's inventory entry, with the probe's timeout and no retries.

The driver classes are the usual ones (``ipmi``, ``redfish``, or a
vendor's), built in the power process from the same settings; only their
primitive calls (``_power_on``, ``_get_power_state`` ...) cross the pipe.
The read-back discipline of ``PowerDriver`` stays in the controller, so
evidence is still what the device read, and a fence's power-off queues
behind an earlier call to the same BMC in the same order as before (one
driver per BMC, its own lock). Failures cross as the typed errors they
were. The process ends when its pipe closes: a controller that exits, or is
killed, takes it along; one that dies under the controller is started
again at the next call, the calls it held failing as transient.
"""

from __future__ import annotations

import importlib
import itertools
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from multiprocessing.connection import Connection

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

CALLS = frozenset({"probe", "prepare", "check", "close", "_power_on", "_power_off", "_soft_off", "_reset", "_power_on_or_reset",
                   "_get_power_state", "_set_boot_device", "_get_boot_device"})
"""What the controller may ask of a driver in the process."""

WORKERS = 512
"""Calls the process runs at once. A call mostly waits for its BMC;
a level's two hundred starts, fences and cross-checks must not queue for a
thread."""


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
        proc = subprocess.Popen([sys.executable, "-m", __name__, str(theirs.fileno()), *self.warm],
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
            self._pending[call_id] = (future, device, _operation(op), conn)
        try:
            with self._send_lock:
                begin_by = time.monotonic() + (GRACE if begin_within is None else begin_within)
                conn.send((call_id, begin_by, cls and cls.__module__, cls and cls.__qualname__,
                           device, settings, op, args))
        except (OSError, ValueError):
            self._pending.pop(call_id, None)
            raise DriverError(device, _operation(op), "its driver process is not answering", transient=True) from None
        try:
            return future.result(timeout=wait)
        except FutureTimeout:
            self._pending.pop(call_id, None)
            raise DriverTimeout(device, _operation(op), wait) from None

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
        for future, device, operation, _ in lost:
            future.set_exception(DriverError(device, operation, "its driver process exited", transient=True))

    def close(self) -> None:
        """Closing the pipe ends the process (see ``serve``)."""
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


class PowerElsewhere(PowerDriver):
    """A BMC's power driver whose calls run in the power process: the
    controller's stand-in for the real driver, with its settings."""

    def __init__(self, real: PowerDriver, process: DriverProcess):
        super().__init__(real.device, real.settings)
        self._cls = type(real)
        self._process = process

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


class ProbeElsewhere:
    """A device watch's probe driver whose ``check`` runs in the probe
    process; ``spec`` is the device's inventory entry (a switch, or a host
    with a hypervisor), dumped once here and sent with every probe."""

    def __init__(self, kind: str, entry, timeout: float, process: DriverProcess):
        self.device = entry.name
        self._kind, self._timeout, self._process = kind, timeout, process
        self._spec = entry.model_dump(mode="json")

    def check(self) -> str:
        return self._process.probe(self._kind, self.device, self._spec, self._timeout)

    def prepared(self) -> "ProbeElsewhere":
        self._process.prepare_probe(self._kind, self.device, self._spec, self._timeout)
        return self

    def close(self) -> None:
        """Nothing here: the process closes its driver when a probe brings a
        changed entry, or when it ends."""


def _operation(op: str) -> str:
    return op.strip("_").replace("_", " ")


def _rebuilt(kind: str, device: str, operation: str, cause: str, transient: bool) -> DriverError:
    if kind == "timeout":
        e = DriverTimeout(device, operation, 0)
        e.cause = cause
        return e
    return DriverError(device, operation, cause, transient)


# --- the driver process ---------------------------------------------------------


def serve(conn, warm: tuple[str, ...] = ()) -> None:
    """Run each call on a worker, one driver per device (rebuilt when its
    settings change); exit when the controller's end of the pipe closes.
    The drivers of the ``warm`` concerns are imported meanwhile."""
    from voe.cli.long_running import collect_cycles_less_often
    from voe.domain.models import Host, Switch
    from voe.drivers import factory

    collect_cycles_less_often()
    drivers: dict[str, tuple[dict, PowerDriver]] = {}
    probes: dict[tuple[str, str], tuple[tuple, object]] = {}  # (kind, device) -> (entry, timeout), its driver
    drivers_lock = threading.Lock()
    send_lock = threading.Lock()
    workers = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="voe-power")

    def driver(module: str, qualname: str, device: str, settings: dict) -> PowerDriver:
        with drivers_lock:
            held = drivers.get(device)
            if held is not None and held[0] == settings and type(held[1]).__qualname__ == qualname:
                return held[1]
            cls = getattr(importlib.import_module(module), qualname)
            built = cls(device, cls.Settings(**settings))
            drivers[device] = (settings, built)
        if held is not None:
            workers.submit(held[1].close)  # a Redfish session logged out; its errors are nobody's
        return built

    def probe_driver(device: str, spec: dict, kind: str, timeout: float):
        """The device's probe driver, built here from its inventory entry
        (again when the entry or the timeout changes). A device has one
        probe at a time (``DeviceWatch``), so its driver is built outside
        the lock: an SNMP engine takes tens of milliseconds."""
        key, wanted = (kind, device), (spec, timeout)
        with drivers_lock:
            held = probes.get(key)
        if held is not None and held[0] == wanted:
            return held[1]
        if kind == "switch":
            built = factory.switch_for(Switch.model_validate(spec))
        else:
            built = factory.hypervisor_for_host(Host.model_validate(spec))
        built.settings = built.settings.model_copy(update={"timeout": timeout, "retries": 0})
        with drivers_lock:
            probes[key] = (wanted, built)
        if held is not None:
            workers.submit(held[1].close)
        return built

    def close(device: str, settings: dict) -> None:
        """The driver built from these settings, if it is still the one:
        closing a driver replaced since must not build it again."""
        with drivers_lock:
            held = drivers.get(device)
            if held is None or held[0] != settings:
                return
            del drivers[device]
        held[1].close()

    def run(call_id: int, begin_by: float, module: str, qualname: str, device: str, settings: dict, op: str,
            args: tuple) -> None:
        try:
            if time.monotonic() > begin_by:  # one clock for both processes: CLOCK_MONOTONIC is system-wide
                raise DriverError(device, _operation(op), "its driver process was too busy to begin it in time",
                                  transient=True)
            if op not in CALLS:
                raise DriverError(device, op, "not a power driver call")
            if op == "probe":
                reply = (call_id, True, probe_driver(device, settings, *args).check())
            elif op == "prepare":
                probe_driver(device, settings, *args)
                reply = (call_id, True, None)
            elif op == "close":
                reply = (call_id, True, close(device, settings))
            else:
                reply = (call_id, True, getattr(driver(module, qualname, device, settings), op)(*args))
        except DriverError as e:
            reply = (call_id, False, ("timeout" if isinstance(e, DriverTimeout) else "error", e.device, e.operation,
                                      e.cause, e.transient))
        except Exception as e:  # noqa: BLE001 - a driver's bug reaches the controller named, not as a hang
            reply = (call_id, False, ("error", device, _operation(op), f"{type(e).__name__}: {e}", False))
        try:
            with send_lock:
                conn.send(reply)
        except (OSError, ValueError):
            pass  # the controller is gone: so is this process, shortly

    threading.Thread(target=_import_drivers, args=(warm,), name="voe-warm", daemon=True).start()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            os._exit(0)  # the controller closed its end, or died: calls under way go with it
        workers.submit(run, *message)


def _import_drivers(concerns: tuple[str, ...]) -> None:
    from voe.drivers import registry

    for concern in concerns:
        for name in registry.available(concern):
            try:
                registry.load(concern, name)
            except Exception:  # noqa: BLE001 - a driver that cannot load says so at its first call
                pass


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])), tuple(sys.argv[2:]))
