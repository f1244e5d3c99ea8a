"""How fast the controller acts and how long it waits. Defaults are chosen
so that a dead persona is suspect within 2 s (a 0.5 s heartbeat, two
missed plus one of grace): faster settings fence healthy machines when the
controller's host is starved of CPU, which is safe but disruptive
and a failover completes in a few seconds; every value can be set with an
environment variable ``VOE_<NAME>`` (e.g. ``VOE_HEARTBEAT_INTERVAL=1``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Timing:
    tick: float = 0.05                 # reconciler loop period
    heartbeat_interval: float = 0.5    # what agents are told
    heartbeat_misses: int = 2          # missed intervals before suspect (plus one interval of grace)
    boot_timeout: float = 90.0         # power-on to agent ready
    stop_timeout: float = 10.0         # agent acknowledges a stop
    soft_off_timeout: float = 10.0     # ACPI off before hard off
    pending_retry: float = 2.0         # re-place a pending persona
    driver_timeout: float = 3.0        # one device call
    workers: int = 64                  # concurrent driver steps

    @property
    def suspect_after(self) -> float:
        return self.heartbeat_interval * (self.heartbeat_misses + 1)

    @classmethod
    def from_env(cls) -> "Timing":
        values = {}
        for f in fields(cls):
            raw = os.environ.get(f"VOE_{f.name.upper()}")
            if raw is not None:
                values[f.name] = type(f.default)(raw)
        return cls(**values)
