"""The composition root: builds the store's services, the driver
processes, the controller and the API, and hands each what it needs. Only
this module (and the CLI that calls it) knows every layer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from fastapi import FastAPI

from voe.api.app import create_app
from voe.api.controller_face import ControllerFace
from voe.controller.campaign import Campaign
from voe.controller.context import Ctx
from voe.controller.devices import Devices
from voe.controller.reconciler import Reconciler
from voe.controller.retention import Retention
from voe.controller.services import Services
from voe.controller.timing import Timing
from voe.drivers.boot.ipxe import ControllerLinks
from voe.drivers.driver_process import DriverProcess
from voe.store.leadership import Leases

log = logging.getLogger("voe.server")

SERVING = 3
"""Leases: a controller that has given no sign of life for this many is
not named to agents (see ``Leadership.agent_urls``)."""


@dataclass(frozen=True)
class Leadership:
    """How this controller competes to lead (see ``controller.campaign``)."""

    leases: Leases
    lease: float  # seconds
    on_deposed: Callable[[int], None]  # stop everything this controller does: another leads

    def agent_urls(self, own: str) -> str:
        """Every serving controller's agent URL, this one's first."""
        from voe.store.time import now

        fresh = [c for c in self.leases.controllers()
                 if (now() - c.renewed_at).total_seconds() < SERVING * max(self.lease, 1.0)]
        return ",".join([own, *sorted(c.agents_url for c in fresh if c.agents_url != own)])


class KnownControllers:
    """The agent URLs to name to agents (in their configuration and each
    beat's answer, so that an agent learns of a controller started after it
    booted): every serving controller's, read from the store at most once a
    ``REREAD`` seconds, the last list read while the store is out of reach."""

    REREAD = 1.0

    def __init__(self, leadership: Leadership | None, own: str):
        self._leadership, self._urls = leadership, own.split(",")
        self._own, self._read_at = own, -self.REREAD

    def agent_urls(self) -> list[str]:
        if self._leadership is not None and time.monotonic() - self._read_at >= self.REREAD:
            self._read_at = time.monotonic()
            try:
                self._urls = self._leadership.agent_urls(self._own).split(",")
            except Exception as e:  # the store out of reach: the list as it was
                log.warning("could not read which controllers serve (%s)", e)
        return self._urls


def build(services: Services, links: ControllerLinks, timing: Timing | None = None, reconcile: bool = True,
          ca_pem: bytes | None = None, leadership: Leadership | None = None) -> FastAPI:
    """The controller's app; ``reconcile`` False serves the API alone;
    ``ca_pem``: the CA that signs the controller's certificate (its pin is
    in ``links``); ``leadership``: the reconciler runs only while this
    controller leads (else it runs for the app's lifetime)."""
    timing = timing or Timing.from_env()
    retention = Retention.from_env()
    if not reconcile:
        return create_app(services, timing, ca_pem=ca_pem)
    power, probes = DriverProcess(warm=("power",)), DriverProcess(warm=("switch", "hypervisor"))
    for process in (power, probes):
        process.start()  # now: a spawn takes a few hundred milliseconds, better not on the first call
    ctx = Ctx(services, services.runtime, Devices(timing.driver_timeout, power, probes), timing, links, retention)
    reconciler = Reconciler(ctx)
    start, stop = reconciler.start, reconciler.stop
    known = KnownControllers(leadership, links.agents)
    if leadership is not None:
        def know_controllers() -> None:
            ctx.links = replace(links, agents=",".join(known.agent_urls()))

        def lead(term: int, previous: str | None) -> None:
            know_controllers()
            reconciler.lead(term, previous)

        def deposed(term: int) -> None:
            try:
                reconciler.stop(wait=False)
            except Exception:  # the restart that follows is what ends the term's work
                log.exception("stopping the reconciler of term %d failed; restarting regardless", term)
            leadership.on_deposed(term)

        campaign = Campaign(leadership.leases, leadership.lease, lead, deposed, know_controllers)
        reconciler.leads = campaign.leads

        def stop_all() -> None:
            campaign.stop()
            reconciler.stop()

        start, stop = campaign.start, stop_all
    face = ControllerFace(pace=ctx.pace, fabric=ctx.ports, power=ctx.devices.power,
                          hypervisors_down=lambda: frozenset(ctx.hypervisors.down()),
                          start=start, stop=stop,
                          beats_heard_from_now=reconciler.hear_beats_from_now,
                          no_beats_heard_yet=reconciler.hear_no_beats_yet, metrics=ctx.metrics.registry,
                          agent_urls=known.agent_urls)
    return create_app(services, timing, face, ca_pem)
