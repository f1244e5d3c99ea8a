"""Cross-checking a silent persona with its machine before fencing.

What the BMC or hypervisor says goes into the log; it is not evidence (a
BMC reading 'on' says nothing of a hung OS). Its other use is speed: every
device a fence level would need is asked at once, bounded by
``crosscheck_timeout``, and one that cannot answer is remembered as silent
for a few seconds, so the fence tries its level last instead of first
waiting a full driver timeout (and its retries) for a device already known
not to answer.

The looks start early: once a running persona has missed half the beats
that make it suspect, its devices are asked (``Lookouts.begin``), so when
it does become suspect the answers — or the silence — are already in
(``Lookouts.finish``). A BMC that is gone no longer costs the whole
``crosscheck_timeout`` on every failover's critical path.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from voe.domain.models import Host
from voe.drivers.base import PowerState, VmState
from voe.errors import DriverError
from voe.store.runtime import Incarnation

SILENCE_MEMORY = 5.0  # seconds a device that did not answer counts as silent (keys: (device, host))


class Lookouts:
    """Cross-checks begun ahead of need, one per incarnation, kept until
    the persona is suspect (and used) or heard from again (dropped)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self._lock = threading.Lock()
        # persona -> (generation, when asked, the looks)
        self._looks: dict[str, tuple[int, float, dict[str, Future]]] = {}
        self._finished: dict[str, int] = {}  # persona -> the generation last cross-checked here

    def holds(self, persona: str, generation: int) -> bool:
        """A fresh look is already out for this incarnation."""
        held = self._looks.get(persona)
        return held is not None and held[0] == generation and time.monotonic() - held[1] <= FRESH

    def begin(self, inc: Incarnation, host: Host) -> None:
        with self._lock:
            if self.holds(inc.persona, inc.generation):
                return
            self._looks[inc.persona] = (inc.generation, time.monotonic(), _ask(self.ctx, inc, host))

    def drop(self, persona: str) -> None:
        if persona in self._looks:
            with self._lock:
                self._looks.pop(persona, None)

    def finish(self, inc: Incarnation, host: Host) -> str:
        """What the devices said: from the looks begun early when they are
        fresh (younger than ``FRESH``), else from looks asked now."""
        with self._lock:
            generation, began, looks = self._looks.pop(inc.persona, (None, None, None))
        if generation != inc.generation or time.monotonic() - began > FRESH:
            began, looks = time.monotonic(), _ask(self.ctx, inc, host)
        self._finished[inc.persona] = inc.generation
        return _answers(self.ctx, host, looks, began)

    def checked(self, inc: Incarnation) -> bool:
        """Whether this controller cross-checked the incarnation: a fence
        resumed after a restart, or entered straight from a failed start,
        has no such hint yet."""
        return self._finished.get(inc.persona) == inc.generation


FRESH = 2.0
"""Seconds an early look stays good for: it is a hint for the order of the
fence levels, and the state of a failing machine moves."""


def _ask(ctx, inc: Incarnation, host: Host) -> dict[str, Future]:
    """Ask, in parallel, the device that runs the incarnation and, for a VM,
    the BMC of its host (the next fence level)."""
    looks: dict[str, Future] = {}
    if inc.kind == "physical":
        looks["bmc"] = ctx.workers.crosschecks.submit(_bmc_reads, ctx, host, "")
    else:
        looks["hypervisor"] = ctx.workers.crosschecks.submit(_hypervisor_reads, ctx, host, inc.vm)
        if host.bmc is not None:
            looks["bmc"] = ctx.workers.crosschecks.submit(_bmc_reads, ctx, host, "hypervisor host ")
    return looks


def _answers(ctx, host: Host, looks: dict[str, Future], began: float) -> str:
    """Say what each device answered within ``crosscheck_timeout`` of being
    asked; remember those that did not as silent."""
    silence, timeout = ctx.silence, ctx.timing.crosscheck_timeout
    deadline = began + timeout
    seen = []
    for device, look in looks.items():
        try:
            seen.append(look.result(timeout=max(0.0, deadline - time.monotonic())))
            silence.clear((device, host.name))
        except (DriverError, FutureTimeout) as e:
            seen.append(f"cannot read the {device} of {host.name}: {str(e) or f'no answer within {timeout:g} s'}")
            silence.mark((device, host.name))
    return "; ".join(seen)


def _bmc_reads(ctx, host: Host, what: str) -> str:
    state = ctx.devices.power(host).power_state(retry=False)
    return f"BMC of {what}{host.name} reads {state.value}" + (
        " (the OS may be hung or cut off)" if state == PowerState.ON and not what else "")


def _hypervisor_reads(ctx, host: Host, vm: str) -> str:
    state = ctx.devices.hypervisor(host).state(vm, retry=False)
    return f"hypervisor {host.name} reads VM {vm} {state.value}" + (
        " (the guest may be hung or cut off)" if state == VmState.RUNNING else "")
