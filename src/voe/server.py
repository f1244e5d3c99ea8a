"""The composition root: builds the store's services, the driver
processes, the controller and the API, and hands each what it needs. Only
this module (and the CLI that calls it) knows every layer."""

from __future__ import annotations

from fastapi import FastAPI

from voe.api.app import create_app
from voe.api.controller_face import ControllerFace
from voe.controller.context import Ctx
from voe.controller.devices import Devices
from voe.controller.reconciler import Reconciler
from voe.controller.retention import Retention
from voe.controller.services import Services
from voe.controller.timing import Timing
from voe.drivers.boot.ipxe import ControllerLinks
from voe.drivers.driver_process import DriverProcess


def build(services: Services, links: ControllerLinks, timing: Timing | None = None, reconcile: bool = True,
          ca_pem: bytes | None = None) -> FastAPI:
    """The controller's app; ``reconcile`` False serves the API alone;
    ``ca_pem``: the CA that signs the controller's certificate (its pin is
    in ``links``)."""
    timing = timing or Timing.from_env()
    retention = Retention.from_env()
    if not reconcile:
        return create_app(services, timing, ca_pem=ca_pem)
    power, probes = DriverProcess(warm=("power",)), DriverProcess(warm=("switch", "hypervisor"))
    for process in (power, probes):
        process.start()  # now: a spawn takes a few hundred milliseconds, better not on the first call
    ctx = Ctx(services, services.runtime, Devices(timing.driver_timeout, power, probes), timing, links, retention)
    reconciler = Reconciler(ctx)
    face = ControllerFace(pace=ctx.pace, fabric=ctx.ports, power=ctx.devices.power,
                          hypervisors_down=lambda: frozenset(ctx.hypervisors.down()),
                          start=reconciler.start, stop=reconciler.stop,
                          beats_heard_from_now=reconciler.hear_beats_from_now,
                          no_beats_heard_yet=reconciler.hear_no_beats_yet, metrics=ctx.metrics.registry)
    return create_app(services, timing, face, ca_pem)
