"""How fast the controller acts and how long it waits. The defaults make a
dead persona suspect after 1 s (a 0.25 s heartbeat: three missed plus one
of grace), so a failover completes in about two seconds; a beat costs the
controller no store write (see ``Heartbeats.record``). Raise the
interval for thousands of personas, or where agents may be starved of CPU
for a second: a late beat makes a healthy persona suspect and then fenced,
which is safe but disruptive. Every value can be set with an environment
variable ``VOE_<NAME>`` (e.g. ``VOE_HEARTBEAT_INTERVAL=1``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

CONTROLLER_QUIET = 1.0
"""Seconds without a word from its controller (paused, hung) after which an
agent service refuses beats, so that its agents beat to another controller
(see ``api.agent_service``)."""


@dataclass(frozen=True)
class Timing:
    tick: float = 0.05                 # reconciler loop period
    heartbeat_interval: float = 0.25   # what agents are told (at least: see ``pacing``)
    max_heartbeats_per_second: float = 100.0  # beyond this many agents x rate, agents are told to beat less often
    heartbeat_misses: int = 3          # missed intervals before suspect (plus one interval of grace)
    boot_timeout: float = 90.0         # power-on to agent ready
    boot_script_timeout: float = 30.0  # power-on to the machine fetching its boot script (raise for a long POST)
    start_failures: int = 3            # failed starts in a row after which a persona is failed, not retried
    start_failure_window: float = 900.0  # seconds: only starts begun this recently count
    stop_timeout: float = 10.0         # agent acknowledges a stop
    soft_off_timeout: float = 10.0     # ACPI off before hard off
    pending_retry: float = 2.0         # re-place a pending persona
    driver_timeout: float = 3.0        # one device call
    crosscheck_timeout: float = 0.5    # a silent persona's BMC or hypervisor asked its state
    switch_probe_interval: float = 0.5  # how often every switch is asked whether it answers
    switch_probe_timeout: float = 1.0  # a probe unanswered this long is a miss (two in a row: down)
    hypervisor_probe_interval: float = 2.0  # the same for hypervisor APIs (they only steer new VMs)
    max_probes_per_second: float = 20.0  # per watch: beyond, passes are spaced (24 switches: every 1.2 s)
    workers: int = 256                 # concurrent driver steps: a level's starts, most waiting for a BMC
                                       # slot or a device, leave workers for stops and fences
    bmc_slots: int = 64                # servers taken through their BMC's power-on sequence at once

    @property
    def suspect_after(self) -> float:
        return self.heartbeat_interval * (self.heartbeat_misses + 1)

    @classmethod
    def from_env(cls) -> Timing:
        """The defaults, each overridden by its ``VOE_<FIELD>`` variable;
        a value that is not a number names its variable and stops here."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            variable = f"VOE_{f.name.upper()}"
            raw = os.environ.get(variable)
            if raw is None:
                continue
            kind = int if f.type == "int" else float
            try:
                values[f.name] = kind(raw)
            except ValueError:
                raise ValueError(f"{variable}={raw!r} is not {'a whole number' if kind is int else 'a number'}: "
                                 f"set it like {variable}={f.default} or unset it") from None
        return cls(**values)
