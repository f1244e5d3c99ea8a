"""Cross-checking a silent persona with its machine before fencing.

What the BMC or hypervisor says goes into the log; it is not evidence (a
BMC reading 'on' says nothing of a hung OS). Its other use is speed: every
device a fence level would need is asked at once, bounded by
``crosscheck_timeout``, and one that cannot answer is remembered as silent
for a few seconds, so the fence tries its level last instead of first
waiting a full driver timeout (and its retries) for a device already known
not to answer.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from voe.domain.models import Host
from voe.drivers.base import PowerState, VmState
from voe.errors import DriverError
from voe.store.runtime import Incarnation

SILENCE_MEMORY = 5.0  # seconds a device that did not answer counts as silent (keys: (device, host))

_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="voe-crosscheck")


def crosscheck(ctx, inc: Incarnation, host: Host) -> str:
    """Ask, in parallel, the device that runs the incarnation and, for a VM,
    the BMC of its host (the next fence level); say what each answered."""
    silence, timeout = ctx.silence, ctx.timing.crosscheck_timeout
    looks: dict[str, Future] = {}
    if inc.kind == "physical":
        looks["bmc"] = _POOL.submit(_bmc_reads, ctx, host, "")
    else:
        looks["hypervisor"] = _POOL.submit(_hypervisor_reads, ctx, host, inc.vm)
        if host.bmc is not None:
            looks["bmc"] = _POOL.submit(_bmc_reads, ctx, host, "hypervisor host ")
    deadline = time.monotonic() + timeout
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
