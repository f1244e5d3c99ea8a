"""Stopping a persona: ask its agent, then the OS (ACPI), then pull the plug;
the incarnation ends only when the machine reads off."""

from __future__ import annotations

import time

from voe.controller.context import Ctx
from voe.domain.lifecycle import Event, State
from voe.domain.models import Persona
from voe.drivers.base import PowerState, VmState
from voe.errors import DriverError
from voe.store.runtime import Incarnation
from voe.store.time import now


def _agent_acknowledged(ctx: Ctx, inc: Incarnation) -> bool:
    """Wait for the agent to report it is stopping (it learns of the stop
    from its next heartbeat answer), or to fall silent."""
    deadline = time.monotonic() + ctx.timing.stop_timeout
    while time.monotonic() < deadline:
        hb = ctx.runtime.beats.newest().get(inc.persona)
        if hb is None or hb["generation"] != inc.generation:
            return False
        if hb["stopping"]:
            return True
        if (now() - hb["at"]).total_seconds() > ctx.pace.silence_limit(hb.get("told")):
            return False
        time.sleep(min(0.05, ctx.timing.heartbeat_interval / 4))
    return False


def _wait(read, want, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if want(read()):
                return True
        except DriverError:
            pass
        time.sleep(0.1)
    return False


def power_down(ctx: Ctx, inc: Incarnation, graceful: bool) -> str:
    """Turn the incarnation's machine off and return the evidence: a read
    of the device saying off. Raises DriverError when it cannot be had."""
    inv = ctx.inventory()
    host = inv.by_name("hosts")[inc.host]
    where = {"persona": inc.persona, "host": host.name}
    if inc.kind == "physical":
        power = ctx.devices.power(host)
        if graceful:
            ctx.log("info", "driver-call", f"{host.name}: ACPI soft-off", **where)
            power.soft_off()
            if _wait(power.power_state, lambda s: s == PowerState.OFF, ctx.timing.soft_off_timeout):
                return f"BMC of {host.name} reads off after soft-off"
        ctx.log("info", "driver-call", f"{host.name}: hard power-off", **where)
        power.power_off(confirm=True)
        return f"BMC of {host.name} reads off after hard power-off"
    hv = ctx.devices.hypervisor(host)
    if graceful:
        ctx.log("info", "driver-call", f"{host.name}: ACPI shutdown of VM {inc.vm}", **where)
        hv.shutdown(inc.vm)
        if _wait(lambda: hv.state(inc.vm), lambda s: s in (VmState.OFF, VmState.ABSENT), ctx.timing.soft_off_timeout):
            hv.undefine(inc.vm)
            return f"hypervisor {host.name} reads VM {inc.vm} off after shutdown"
    ctx.log("info", "driver-call", f"{host.name}: destroy VM {inc.vm}", **where)
    seen = hv.destroy(inc.vm)
    hv.undefine(inc.vm)
    return f"hypervisor {host.name} reads VM {inc.vm} {seen} after destroy"


def release(ctx: Ctx, inc: Incarnation) -> None:
    """After an incarnation ended: its boot script, credential, storage
    access and VLANs go."""
    ctx.runtime.unregister_boot(inc.persona, inc.generation)
    if inc.boot_mac and ctx.runtime.boot_target(inc.boot_mac) is None:  # not booting a newer incarnation there
        ctx.dhcp.deny(inc.boot_mac)
    ctx.services.tokens.revoke_incarnation(inc.persona, inc.generation)
    inv = ctx.inventory()
    persona = inv.by_name("personas").get(inc.persona)
    if persona is not None:
        ctx.storage.revoke(inv, persona, inc)
    ctx.ports.reconcile(ctx.inventory, [inc.host], persona=inc.persona)


def release_in_background(ctx: Ctx, inc: Incarnation) -> None:
    """``release`` off the critical path: the evidence that the incarnation
    ended is already recorded, so its replacement need not wait for the old
    ports and storage to be tidied."""
    def run() -> None:
        try:
            release(ctx, inc)
        except DriverError as e:
            ctx.log("error", "driver-call", f"could not release what {inc.persona} generation {inc.generation} held: {e}",
                    persona=inc.persona)
    ctx.workers.releases.submit(run)


def stop(ctx: Ctx, p: Persona) -> None:
    inc = ctx.runtime.current(p.name)
    if inc is None or inc.ended_at is not None:
        ctx.runtime.transition(p.name, State.STOPPING, Event.OFF_CONFIRMED, "nothing was running")
        return
    acknowledged = _agent_acknowledged(ctx, inc)
    try:
        evidence = power_down(ctx, inc, graceful=not acknowledged)
    except DriverError as e:
        ctx.runtime.transition(p.name, State.STOPPING, Event.FAILED, f"could not confirm off: {e}", host=inc.host)
        return
    ctx.runtime.end_incarnation(p.name, inc.generation, evidence)
    try:
        release(ctx, inc)
    except DriverError as e:
        ctx.log("error", "driver-call", f"could not remove {p.name}'s VLANs: {e}", persona=p.name, host=inc.host)
    ctx.runtime.transition(p.name, State.STOPPING, Event.OFF_CONFIRMED, evidence, host=inc.host)
