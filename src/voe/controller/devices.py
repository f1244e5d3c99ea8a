"""Drivers for the devices of the inventory, built on demand and kept, so a
BMC session or SNMP engine is reused across calls. Rebuilt when the device's
inventory entry changes. Given a power process, BMC drivers run there; given
a probe process, the device watches' probes do (see ``drivers.driver_process``)."""

from __future__ import annotations

import logging
import threading

from voe.domain.models import Host, Switch
from voe.drivers import factory
from voe.drivers.base import Driver, DriverObserver, HypervisorDriver, PowerDriver, StorageDriver, SwitchDriver
from voe.drivers.driver_process import DriverProcess, RemotePower, RemoteProbe

log = logging.getLogger("voe.devices")


class Devices:
    def __init__(self, timeout: float, power_process: DriverProcess | None = None,
                 probe_process: DriverProcess | None = None):
        self.timeout = timeout
        self.power_process = power_process
        self.probe_process = probe_process
        self.observer: DriverObserver | None = None  # told of every call of the drivers built from now
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[object, Driver]] = {}
        self._building: dict[tuple[str, str], threading.Lock] = {}

    def _get(self, concern: str, name: str, spec: object, build):
        """The cached driver, else a new one; building one may talk to the
        device (a Redfish service root), so it holds only that device's lock."""
        key = (concern, name)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == spec:
                return hit[1]
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                hit = self._cache.get(key)
            if hit is not None and hit[0] == spec:
                return hit[1]
            driver = build()
            if isinstance(driver, Driver):
                driver.observer = self.observer
            with self._lock:
                self._cache[key] = (spec, driver)
            if hit is not None:
                hit[1].close()
            return driver

    def _timed(self, driver, probe_timeout: float | None = None):
        """The driver with the controller's timeout; a probe's has its own,
        and no retries."""
        update = {"timeout": probe_timeout or self.timeout}
        if probe_timeout is not None:
            update["retries"] = 0
        driver.settings = driver.settings.model_copy(update=update)
        return driver

    def power(self, host: Host) -> PowerDriver:
        return self._get("power", host.name, host.bmc, lambda: self._power_for(host))

    def _power_for(self, host: Host) -> PowerDriver:
        real = self._timed(factory.power_for_host(host))
        return real if self.power_process is None else RemotePower(real, self.power_process)

    def switch(self, switch: Switch) -> SwitchDriver:
        return self._get("switch", switch.name, switch, lambda: self._timed(factory.switch_for(switch)))

    def switch_probe(self, switch: Switch, timeout: float) -> SwitchDriver:
        """A second driver for the switch watch's probes, with their short
        timeout and no retries: a probe must not queue behind the port
        writes and table walks of the main driver (one session, one call at
        a time), or a busy switch would look like a dead one."""
        if self.probe_process is not None:
            return self._get("switch-probe", switch.name, switch,
                             lambda: RemoteProbe("switch", switch, timeout, self.probe_process).prepared())
        return self._get("switch-probe", switch.name, switch, lambda: self._timed(factory.switch_for(switch), timeout))

    def hypervisor(self, host: Host) -> HypervisorDriver:
        return self._get("hypervisor", host.name, host.hypervisor, lambda: self._timed(factory.hypervisor_for_host(host)))

    def hypervisor_probe(self, host: Host, timeout: float) -> HypervisorDriver:
        """The hypervisor watch's own driver, for the same reason as
        ``switch_probe``: a libvirt connection serves one call at a time."""
        if self.probe_process is not None:
            return self._get("hypervisor-probe", host.name, host,
                             lambda: RemoteProbe("hypervisor", host, timeout, self.probe_process).prepared())
        return self._get("hypervisor-probe", host.name, host.hypervisor,
                         lambda: self._timed(factory.hypervisor_for_host(host), timeout))

    def storage(self, host: Host) -> StorageDriver:
        return self._get("storage", host.name, host.storage, lambda: self._timed(factory.storage_for_host(host)))

    def close(self) -> None:
        """Every driver closed, each whatever another's close raised."""
        with self._lock:
            for (kind, name), (_, d) in self._cache.items():
                try:
                    d.close()
                except Exception:
                    log.exception("could not close the %s driver of %s", kind, name)
            self._cache.clear()
        for process in (self.power_process, self.probe_process):
            if process is not None:
                process.close()
