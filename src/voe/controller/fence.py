"""Fencing: obtaining positive evidence that an incarnation cannot run.

Levels are tried in order, as in Pacemaker's fencing topology; a level
succeeds only when its read-back confirms. Missed heartbeats are never
evidence: they only make a persona suspect. When every level fails the
persona is blocked, loudly, and stays blocked until an operator confirms.
"""

from __future__ import annotations

from collections.abc import Callable

from voe.controller.context import Ctx
from voe.controller.decide import RETARGET
from voe.controller.fabric_fence import GaveWay
from voe.controller.start import starts_failing
from voe.controller.stop import release_in_background
from voe.domain import wiring
from voe.domain.lifecycle import Event, State
from voe.domain.models import Host, Persona
from voe.errors import DriverError
from voe.store.runtime import Incarnation

DEFAULT_LEVELS = {"physical": ["bmc", "fabric"], "vm": ["hypervisor", "hypervisor-host-bmc", "fabric"]}


def _bmc(ctx: Ctx, inc: Incarnation, host: Host, patient: bool) -> str:
    if inc.kind != "physical":
        raise DriverError(host.name, "fence bmc", "a VM has no BMC of its own; use hypervisor-host-bmc")
    ctx.devices.power(host).power_off(confirm=True)
    ctx.runtime.fence_host(host.name, f"bmc: powered off to fence {inc.persona}")
    return f"BMC of {host.name} reads off after hard power-off"


def _hypervisor(ctx: Ctx, inc: Incarnation, host: Host, patient: bool) -> str:
    if inc.kind != "vm":
        raise DriverError(host.name, "fence hypervisor", "not a VM")
    seen = ctx.devices.hypervisor(host).destroy(inc.vm)
    return f"hypervisor {host.name} reads VM {inc.vm} {seen} after destroy"


def _hypervisor_host_bmc(ctx: Ctx, inc: Incarnation, host: Host, patient: bool) -> str:
    """The review's case: the hypervisor's API is gone, so power its host off
    through the host's own BMC: one fence for all its VMs."""
    already = ctx.runtime.fenced_hosts().get(host.name)
    if already and already["since"] >= inc.started_at and already["reason"].startswith("bmc"):
        return f"hypervisor host {host.name} was powered off ({already['reason']}) after this VM started"
    ctx.devices.power(host).power_off(confirm=True)
    ctx.runtime.fence_host(host.name, f"bmc: hypervisor host powered off to fence {inc.persona}")
    return f"BMC of hypervisor host {host.name} reads off after hard power-off"


def _fabric(ctx: Ctx, inc: Incarnation, host: Host, patient: bool) -> str:
    """Shut every switch port of the machine's host, each read back down,
    and revoke the persona's storage access (closing its open sessions),
    read back from the storage service. The host stays cut off until an
    operator clears it."""
    inv = ctx.inventory()
    shut = ctx.fabric.shut(inv, host, patient, record=lambda ports: ctx.runtime.fence_host(
        host.name, f"fabric: ports {', '.join(ports)} shut to fence {inc.persona}"))
    persona = inv.by_name("personas").get(inc.persona)
    revoked = ctx.storage.revoke(inv, persona, inc) if persona is not None else None
    return (f"switch ports {', '.join(shut)} of {host.name} read admin down"
            + (f"; storage access revoked ({revoked})" if revoked else ""))


LEVELS: dict[str, Callable[[Ctx, Incarnation, Host, bool], str]] = {
    "bmc": _bmc,
    "hypervisor": _hypervisor,
    "hypervisor-host-bmc": _hypervisor_host_bmc,
    "fabric": _fabric,
}


# the device each level talks to, as the cross-check names it
NEEDS = {"bmc": "bmc", "hypervisor": "hypervisor", "hypervisor-host-bmc": "bmc"}


def _doubt(ctx: Ctx, level: str, host: Host) -> str | None:
    """Why a level is unlikely to answer now, if it is: its device missed
    the cross-check, or (fabric) a switch of the host is down or in doubt,
    where each port write would wait out a whole SNMP timeout."""
    if level == "fabric":
        inv = ctx.inventory()
        doubted = sorted({n.switch for n in wiring.cabled_nics(inv, host)} & ctx.switches.avoid())
        return f"switch {', '.join(doubted)} does not answer" if doubted else None
    device = NEEDS.get(level)
    if device and ctx.silence.ago((device, host.name)) is not None:
        return "its device did not answer the cross-check"
    return None


def fence(ctx: Ctx, p: Persona) -> None:
    """Try the levels in order; a level whose device just failed to answer
    the cross-check (or, for the fabric, whose switch is in doubt) is put
    last rather than waited for first, and is still tried before the
    persona is blocked."""
    inc = ctx.runtime.current(p.name)
    if inc is None or inc.ended_at is not None:
        ctx.runtime.transition(p.name, State.FENCING, Event.FENCE_SUCCEEDED, "no live incarnation")
        return
    host = ctx.inventory().by_name("hosts")[inc.host]
    levels = host.fencing or DEFAULT_LEVELS[inc.kind]
    if not ctx.lookouts.checked(inc):
        # resumed after a restart, or straight from a failed start: half a
        # second to learn which devices answer beats a driver timeout (and
        # its retries) on a dead BMC first
        seen = ctx.lookouts.finish(inc, host)
        ctx.log("info", "fence", f"cross-check before fencing {p.name}: {seen}", persona=p.name, host=host.name)
    doubts = {lv: why for lv in levels if (why := _doubt(ctx, lv, host))}
    failures = []
    queue = [lv for lv in levels if lv not in doubts] + list(doubts)
    gave_way: set[str] = set()
    while queue:
        level = queue.pop(0)
        note = f" ({doubts[level]}: tried last)" if level in doubts else ""
        ctx.log("warning", "fence", f"fencing {p.name} generation {inc.generation} on {host.name}: level {level}{note}",
                persona=p.name, host=host.name)
        try:
            # the last level left waits out a device in doubt; an earlier
            # one gives way to the next as soon as its device is known
            # silent, and is tried again, patiently, if all after it fail
            evidence = LEVELS[level](ctx, inc, host, not queue)
        except DriverError as e:
            failures.append(f"{level}: {e}")
            ctx.log("error", "fence", f"level {level} failed: {e}", persona=p.name, host=host.name)
            if isinstance(e, GaveWay) and level not in gave_way:
                gave_way.add(level)
                queue.append(level)
            continue
        ctx.runtime.end_incarnation(p.name, inc.generation, evidence)
        ctx.failed_hosts.mark(host.name)
        ctx.runtime.transition(p.name, State.FENCING, Event.FENCE_SUCCEEDED, evidence, host=host.name,
                               data={"level": level, "generation": inc.generation})
        return
    ctx.runtime.transition(p.name, State.FENCING, Event.FENCE_FAILED,
                           "no evidence could be had; an operator must run `voe persona confirm-dead` — "
                           + "; ".join(failures), host=host.name)


def settle(ctx: Ctx, p: Persona, desired_running: bool) -> None:
    """After a fence: place again (a new generation), rest, or give up
    when its starts keep failing (see ``decide.give_up``); then release
    what the dead incarnation held. The evidence is already recorded, so
    the replacement need not wait for the old host's ports to be tidied."""
    inc = ctx.runtime.current(p.name)
    failing = starts_failing(ctx, p.name) if desired_running else None
    if failing is not None:
        ctx.runtime.transition(p.name, State.FENCED, Event.GIVE_UP, failing)
        ctx.log("error", "controller", f"{p.name} is failed, not started again: {failing}", persona=p.name)
    elif desired_running:
        # whatever cut it off (a partition, a sick host) may cut off its
        # replacement too: prefer another host
        ctx.runtime.set_intent(p.name, move_kind=RETARGET, move_host=None)
        ctx.runtime.transition(p.name, State.FENCED, Event.RETARGET, "placing a new incarnation")
    else:
        ctx.runtime.transition(p.name, State.FENCED, Event.SETTLE)
    if inc is not None:
        release_in_background(ctx, inc)


def confirm_dead(ctx: Ctx, p: Persona, by: str, reason: str) -> None:
    """An operator's word stands in for evidence: end the incarnation,
    audit who said so, and let the blocked persona settle as fenced."""
    inc = ctx.runtime.current(p.name)
    evidence = f"operator {by} confirmed dead: {reason}"
    if inc is not None and inc.ended_at is None:
        ctx.runtime.end_incarnation(p.name, inc.generation, evidence)
    ctx.log("critical", "audit", evidence, persona=p.name, host=inc.host if inc else None)
    ctx.runtime.clear_intent(p.name, "confirm_dead_by", "confirm_dead_reason")
    ctx.runtime.transition(p.name, State.BLOCKED, Event.OPERATOR_CONFIRMED_DEAD, evidence)
