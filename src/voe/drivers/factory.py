"""Drivers for inventory objects, chosen by the driver name each object
declares and found through entry points (``voe.drivers.registry``)."""

from __future__ import annotations

from voe.domain.models import Host, Switch
from voe.drivers.base import HypervisorDriver, PowerDriver, StorageDriver, SwitchDriver
from voe.drivers.registry import load
from voe.errors import DriverError


def power_for_host(host: Host) -> PowerDriver:
    return load("power", host.bmc.driver).from_host(host)  # type: ignore[attr-defined]


def switch_for(switch: Switch) -> SwitchDriver:
    return load("switch", switch.driver).from_switch(switch)  # type: ignore[attr-defined]


def hypervisor_for_host(host: Host) -> HypervisorDriver:
    if host.hypervisor is None:
        raise DriverError(host.name, "hypervisor", "this host declares no hypervisor")
    return load("hypervisor", host.hypervisor.driver).from_host(host)  # type: ignore[attr-defined]


def storage_for_host(host: Host) -> StorageDriver:
    if host.storage is None:
        raise DriverError(host.name, "storage", "this host declares no storage service")
    cls = load("storage", host.storage.driver)
    return cls(host.name, cls.Settings(**host.storage.settings))
