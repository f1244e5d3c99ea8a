"""The driver process's end (see ``driver_process``): receives calls from
the controller over a pipe, runs each on a worker against the device's
driver, and sends the result, or the typed error, back. One driver per
device, built again when its settings change; the process exits when the
controller's end of the pipe closes."""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from voe import logs
from voe.domain.models import Host, Switch
from voe.drivers import factory, registry
from voe.drivers.base import Driver, PowerDriver
from voe.drivers.driver_process import operation
from voe.errors import DriverError, DriverTimeout
from voe.process import collect_cycles_less_often

POWER_CALLS = frozenset({"check", "_power_on", "_power_off", "_soft_off", "_reset", "_power_on_or_reset",
                         "_get_power_state", "_set_boot_device", "_get_boot_device"})
"""The power driver's calls the controller may make here."""

WORKERS = 512
"""Calls run at once. A call mostly waits for its BMC; a level's two
hundred starts, fences and cross-checks must not queue for a thread."""


class DriverHost:
    def __init__(self, conn: Connection):
        self._conn = conn
        self._power: dict[str, tuple[dict, PowerDriver]] = {}  # device -> its settings, its driver
        self._probes: dict[tuple[str, str], tuple[tuple, Driver]] = {}  # (kind, device) -> (entry, timeout), driver
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._workers = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="voe-driver")
        self._handlers: dict[str, Callable[..., Any]] = {"probe": self._probe, "prepare": self._prepare,
                                                          "close": self._close}

    def serve(self) -> None:
        """Until the controller closes its end, or dies: calls under way go with it."""
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                os._exit(0)
            self._workers.submit(self._run, *message)

    def _run(self, call_id: int, begin_by: float, module: str, qualname: str, device: str, settings: dict, op: str,
             args: tuple) -> None:
        try:
            if time.monotonic() > begin_by:  # one clock for both processes: CLOCK_MONOTONIC is system-wide
                raise DriverError(device, operation(op), "its driver process was too busy to begin it in time",
                                  transient=True)
            handler = self._handlers.get(op)
            if handler is not None:
                value = handler(device, settings, *args)
            elif op in POWER_CALLS:
                value = getattr(self._power_driver(module, qualname, device, settings), op)(*args)
            else:
                raise DriverError(device, op, "not a driver call")
            reply = (call_id, True, value)
        except DriverError as e:
            reply = (call_id, False, ("timeout" if isinstance(e, DriverTimeout) else "error", e.device, e.operation,
                                      e.cause, e.transient))
        except Exception as e:
            reply = (call_id, False, ("error", device, operation(op), f"{type(e).__name__}: {e}", False))
        try:
            with self._send_lock:
                self._conn.send(reply)
        except (OSError, ValueError):
            pass  # the controller is gone: so is this process, shortly

    def _power_driver(self, module: str, qualname: str, device: str, settings: dict) -> PowerDriver:
        with self._lock:
            held = self._power.get(device)
            if held is not None and held[0] == settings and type(held[1]).__qualname__ == qualname:
                return held[1]
            cls = getattr(importlib.import_module(module), qualname)
            built = cls(device, cls.Settings(**settings))
            self._power[device] = (settings, built)
        if held is not None:
            self._workers.submit(held[1].close)  # a Redfish session logged out; its errors are nobody's
        return built

    def _probe_driver(self, device: str, spec: dict, kind: str, timeout: float) -> Driver:
        """The device's probe driver, built here from its inventory entry
        (again when the entry or the timeout changes). A device has one
        probe at a time, so its driver is built outside the lock: an SNMP
        engine takes tens of milliseconds."""
        key, wanted = (kind, device), (spec, timeout)
        with self._lock:
            held = self._probes.get(key)
        if held is not None and held[0] == wanted:
            return held[1]
        built: Driver
        if kind == "switch":
            built = factory.switch_for(Switch.model_validate(spec))
        else:
            built = factory.hypervisor_for_host(Host.model_validate(spec))
        built.settings = built.settings.model_copy(update={"timeout": timeout, "retries": 0})
        with self._lock:
            self._probes[key] = (wanted, built)
        if held is not None:
            self._workers.submit(held[1].close)
        return built

    def _probe(self, device: str, spec: dict, kind: str, timeout: float) -> str:
        return self._probe_driver(device, spec, kind, timeout).check()

    def _prepare(self, device: str, spec: dict, kind: str, timeout: float) -> None:
        self._probe_driver(device, spec, kind, timeout)

    def _close(self, device: str, settings: dict) -> None:
        """The power driver built from these settings, if it is still the
        one: closing a driver replaced since must not build it again."""
        with self._lock:
            held = self._power.get(device)
            if held is None or held[0] != settings:
                return
            del self._power[device]
        held[1].close()


def _import_drivers(concerns: tuple[str, ...]) -> None:
    """The drivers of ``concerns`` imported ahead of their first call."""
    for concern in concerns:
        for name in registry.available(concern):
            try:
                registry.load(concern, name)
            except Exception:
                pass


def main(argv: list[str]) -> None:
    logs.configure("drivers")  # the controller's format, from the environment
    collect_cycles_less_often()
    host = DriverHost(Connection(int(argv[0])))
    threading.Thread(target=_import_drivers, args=(tuple(argv[1:]),), name="voe-warm", daemon=True).start()
    host.serve()


if __name__ == "__main__":
    main(sys.argv[1:])
