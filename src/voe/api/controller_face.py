"""What the API asks of a running controller, besides the store: the
narrow face the composition root (``voe.server``) hands it, so that the API
knows nothing of the reconciler's insides. Without it the API serves the
store alone (a read replica, the tests of the routes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry

from voe.controller.pacing import BeatPace
from voe.domain.inventory import Inventory
from voe.domain.models import Host
from voe.domain.ports import PortConfig
from voe.drivers.base import PowerDriver


class FabricView(Protocol):
    """The switch ports as the controller plans and last confirmed them."""

    def plan(self, inv: Inventory, hosts: list[str]) -> dict[tuple[str, str], PortConfig]: ...

    def confirmed(self) -> dict[tuple[str, str], PortConfig]: ...

    def switches_down(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class ControllerFace:
    pace: BeatPace
    fabric: FabricView
    power: Callable[[Host], PowerDriver]  # a host's BMC, through the controller's power process
    hypervisors_down: Callable[[], frozenset[str]]
    start: Callable[[], None]  # for the app's lifetime
    stop: Callable[[], None]
    beats_heard_from_now: Callable[[], None]  # agents' beats reach the controller from now on
    no_beats_heard_yet: Callable[[], None]  # until the call above (an agent service starting)
    metrics: CollectorRegistry  # what ``GET /metrics`` serves
    agent_urls: Callable[[], list[str]]  # every serving controller's agent URL, to name to agents
