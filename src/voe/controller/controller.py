"""The controller assembled: store, devices, reconciler and API."""

from __future__ import annotations

from fastapi import FastAPI

from voe.api.app import create_app
from voe.controller.context import Ctx
from voe.controller.devices import Devices
from voe.controller.reconciler import Reconciler
from voe.controller.services import Services
from voe.controller.timing import Timing
from voe.drivers.elsewhere import DriverProcess


def build(services: Services, public_url: str, timing: Timing | None = None, reconcile: bool = True) -> FastAPI:
    timing = timing or Timing.from_env()
    reconciler = None
    if reconcile:
        power, probes = DriverProcess(warm=("power",)), DriverProcess(warm=("switch", "hypervisor"))
        for process in (power, probes):
            process.start()  # now: a spawn takes a few hundred milliseconds, better not on the first call
        ctx = Ctx(services, services.runtime, Devices(timing.driver_timeout, power, probes), timing, public_url)
        reconciler = Reconciler(ctx)
    return create_app(services, timing, reconciler)
