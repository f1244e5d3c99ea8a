"""Starting a persona: place it, then power it on.

``place`` records the new incarnation before anything touches hardware;
``power_on`` is idempotent, so a controller killed half-way through it simply
runs it again after a restart.
"""

from __future__ import annotations

from voe.controller.context import Ctx
from voe.controller.decide import NEVER_STARTED, RETARGET, give_up
from voe.controller.stop import release_in_background
from voe.domain import capacity, wiring
from voe.domain.lifecycle import Event, State
from voe.domain.models import Persona
from voe.domain.placement import Constraint, Placer, move_constraint
from voe.drivers.base import VmSpec
from voe.drivers.boot import ipxe
from voe.errors import DriverError
from voe.store.runtime import DoubleStartRefused, Placed, StaleState
from voe.store.time import aware, now

BMC_TRIES = 3
"""BMC sequences a start sends before its server counts as failed (see
``_network_boot``)."""
BOOTSTRAP_BOOT_TIMEOUTS = 2
"""How long a boot script's bootstrap token is good for, in boot timeouts:
the boot timeout counts from power-on, and a start may queue for its power
command before that."""


def machines_now(ctx: Ctx, last_resort: bool = False, also: tuple[Placed, ...] = ()):
    """What placement may choose from now, with ``also`` (placements of
    this batch, not yet recorded) taken. A fenced host is out until an
    operator clears it, except, as a last resort, a server that a fence
    powered off (confirmed off, so nothing runs there; booting it again is
    better than leaving a persona down). A hypervisor host powered off has
    no hypervisor, and a host cut off at the fabric may still be running.
    A hypervisor whose API does not answer gets no new VMs. A controller
    just started first hears every switch once, or doubts it (see
    ``DeviceWatch.await_verdicts``), so that it does not place blind."""
    inv = ctx.inventory()
    ctx.switches.await_verdicts((sw.name for sw in inv.switches), doubt_is_enough=True)
    allocations = [capacity.Allocation(i.persona, i.kind, i.host) for i in ctx.runtime.live()]
    allocations += [capacity.Allocation(pl.persona, pl.kind, pl.host) for pl in also]
    fenced = ctx.runtime.fenced_hosts()
    hosts = inv.by_name("hosts")
    if last_resort:
        fenced = {h: v for h, v in fenced.items()
                  if not v["reason"].startswith("bmc") or h not in hosts or hosts[h].hypervisor is not None}
    unavailable = set(fenced) | ctx.hypervisors.avoid()
    return inv, capacity.machines(inv, allocations, unavailable, ctx.switches.avoid())


def place(ctx: Ctx, p: Persona) -> None:
    """Place every persona now waiting to be placed, this one first, against
    one view of capacity: a level of a group start arrives as hundreds of
    placements at once, and each would otherwise recompute the whole
    datacenter's capacity in turn under the placement lock."""
    with ctx.workers.placement_lock:
        if ctx.runtime.state_of(p.name).state != State.PLACING:
            return  # placed by the batch of another step of its level: one row read, not every persona's
        states = ctx.runtime.states(in_state=State.PLACING)
        if p.name not in states:
            return
        waiting = [p.name] + sorted(n for n in states if n != p.name)
        latest = ctx.runtime.latest(waiting)
        intents = ctx.runtime.intents()
        inv, machines = machines_now(ctx)
        placer = Placer(machines)
        personas = inv.by_name("personas")
        placements: list[Placed] = []
        refusals: dict[str, Exception] = {}
        for name in waiting:
            if name not in personas:
                continue
            try:
                placed = _place_one(ctx, placer, inv, personas[name], states[name], latest.get(name),
                                    intents.get(name) or {}, tuple(placements))
            except StaleState as e:
                refusals[name] = e
                continue
            if placed is not None:
                placements.append(placed)
        refusals.update(ctx.runtime.place(placements))
        for name, refused in refusals.items():
            if isinstance(refused, (StaleState, DoubleStartRefused)):
                if name == p.name:
                    raise refused
                ctx.log("warning", "controller", f"placing {name} with {p.name}: {refused}", persona=name)


def _place_one(ctx: Ctx, placer: Placer, inv, p: Persona, st, current, intent: dict,
               batch: tuple[Placed, ...]) -> Placed | None:
    """The placement to record for ``p``, or None when there is none to
    record (it carried on, or fits nowhere: said so already). Every choice
    is made on ``placer``, the batch's books, or on machines that count the
    ``batch`` placed so far: two personas retargeted in one batch (fenced
    together) were each given the same spare server, one by the batch's
    placer and one by a placer of its own that did not know of the other,
    and one of the two never booted (a server boots one script)."""
    if current is not None and current.ended_at is None:
        # a controller died between recording the incarnation and the
        # transition: carry on with the incarnation already recorded (its
        # move or retarget is spent)
        if intent.get("move_kind"):
            ctx.runtime.clear_intent(p.name, "move_kind", "move_host")
        ctx.runtime.transition(p.name, State.PLACING, Event.PLACED, current.why, host=current.host)
        return None
    decision = None
    plan = st.plan or {}
    if plan.get("host"):
        decision = placer.place(p, Constraint(host=plan["host"], kind=plan["kind"]))
        if decision.ok:
            decision.why = plan.get("why") or decision.why
    moving = move_constraint(intent["move_kind"], intent.get("move_host"), current.host if current else None) \
        if intent.get("move_kind") else Constraint()
    if decision is None or not decision.ok:
        decision = placer.place(p, moving)
    retarget = intent.get("move_kind") == RETARGET
    if retarget and decision.ok and decision.machine.host in ctx.failed_hosts.members():
        # whatever failed there (a partition, a sick hypervisor) may be
        # unseen still: another host if one fits
        placer.release(p, decision.machine)
        elsewhere = placer.place(p, Constraint(avoid_host=moving.avoid_host, shun=ctx.failed_hosts.members()))
        decision = elsewhere if elsewhere.ok else placer.place(p, moving)
    if not decision.ok and retarget:
        # the host it was fenced on is the only one left: better than none
        decision = placer.place(p, Constraint())
    if not decision.ok and retarget:
        # a fresh view, the servers a fence powered off in it as a last
        # resort: what fit nowhere a moment ago (a switch still in doubt
        # to a controller just restarted) may fit now, and a host that
        # was never fenced comes first
        last_resort = Placer(machines_now(ctx, last_resort=True, also=batch)[1])
        fallback = last_resort.place(p, Constraint(shun=frozenset(ctx.runtime.fenced_hosts())))
        if not fallback.ok:
            fallback = last_resort.place(p, Constraint())
            fallback.why += " (a host powered off by an earlier fence: nothing else fits)"
        if fallback.ok:
            decision = fallback
    if not decision.ok:
        ctx.runtime.transition(p.name, State.PLACING, Event.UNPLACEABLE, decision.why, data=decision.as_dict())
        return None
    m = decision.machine
    host = inv.by_name("hosts")[m.host]
    boot_mac = wiring.boot_mac(inv, p, m.kind, host, ctx.switches.avoid())
    return Placed(p.name, m.kind, m.host, p.name if m.kind == "vm" else None, boot_mac, decision.why,
                  clear_move=bool(intent.get("move_kind")))


def power_on(ctx: Ctx, p: Persona) -> None:
    inc = ctx.runtime.current(p.name)
    if inc is None or inc.ended_at is not None:
        # a controller died between ending a start that never began and saying
        # so: a start that never began, tried again as soon as one is
        ctx.runtime.transition(p.name, State.POWERING_ON, Event.NOT_STARTED,
                               f"{NEVER_STARTED}: its incarnation had already ended")
        return
    inv = ctx.inventory()
    p = inv.by_name("personas")[p.name]
    host = inv.by_name("hosts")[inc.host]
    where = {"persona": p.name, "host": host.name}
    bootable = False  # from here on a machine may boot it: only fencing can say it does not run
    try:
        # the storage service and the switches are independent: ask both at once
        granted = ctx.workers.grants.submit(ctx.storage.grant, inv, p, inc.generation)
        try:
            ctx.ports.reconcile(ctx.inventory, [host.name], persona=p.name, tidy_in_background=True)
        finally:
            granted.result()
        bootable = True
        ctx.runtime.commits.run(lambda c: _register_boot(ctx, p, inc, where, c))
        boot = wiring.boot_vnic(p)
        ctx.dhcp.allow(inc.boot_mac, str(boot.ip) if boot is not None and boot.ip is not None else None)
        if inc.kind == "physical":
            _network_boot(ctx, host, where)
        else:
            hv = ctx.devices.hypervisor(host)
            macs = tuple(v.mac for v in wiring.ordered_vnics(p))
            spec = VmSpec(inc.vm, p.cpus, p.memory, macs, "network", vlans=wiring.vm_vlans(inv, p))
            ctx.log("info", "driver-call", f"{host.name}: define and start VM {inc.vm} ({p.cpus} vCPU, {p.memory} MiB)", **where)
            hv.define(spec)
            hv.start(inc.vm)
    except (DriverError, wiring.WiringError) as e:
        if not bootable:  # e.g. its switches stopped answering since it was placed
            _not_started(ctx, inc, e)
            return
        ctx.runtime.transition(p.name, State.POWERING_ON, Event.FAILED, str(e), host=host.name)
        return
    ctx.runtime.transition(p.name, State.POWERING_ON, Event.POWERED, f"generation {inc.generation} on {host.name}",
                           host=host.name)


def _network_boot(ctx: Ctx, host, where: dict) -> None:
    """Every boot from the network, then power on (reset if already on),
    each read back. A BMC that stays silent past the driver's timeout is
    asked again, up to ``BMC_TRIES`` sequences in all: a start that fails
    here has its server fenced and taken out of placement, and a BMC slow
    under a level's burst is no reason for that.

    The PXE choice is persistent, not the one-time override. Every
    command of the sequence is idempotent but reset, and a BMC may run a
    resent request again (the lab's do): a reset resent after its answer
    was lost then boots the server twice, the second time from disk, the
    override used up by the first, and the persona sat booting nothing
    until its boot timeout. Booting from the network every time is also
    the safer default for a server voe owns: reset by anyone later, it asks
    for its script again, and a server whose persona has left finds none
    (a used-up override would have let it boot whatever its disk holds)."""
    power = ctx.devices.power(host)
    for attempt in range(1, BMC_TRIES + 1):
        try:
            with ctx.workers.bmc_slots:
                ctx.log("info", "driver-call", f"{host.name}: boot PXE, power on", **where)
                power.set_boot_device("pxe", persistent=True)
                power.power_on_or_reset()
            return
        except DriverError as e:
            if not e.transient or attempt == BMC_TRIES:
                raise
            ctx.log("warning", "driver-call", f"{e} (try {attempt} of {BMC_TRIES}): asking again", **where)


def _register_boot(ctx: Ctx, p: Persona, inc, where: dict, c) -> None:
    """Its bootstrap token, its script and their record, in one transaction (a
    level's hundreds of starts each queue for the store's writes once).

    A start run again (its controller died after this commit) keeps what it
    registered: the machine may have booted that script already, and a VM
    already started is not started again, so a new credential would have
    its agent answered "stale" and the persona sit booting nothing until
    its boot timeout."""
    if ctx.runtime.boot_registered(inc.boot_mac, p.name, inc.generation, conn=c):
        ctx.log("info", "boot", f"iPXE script for {inc.boot_mac} (generation {inc.generation}) registered already: kept",
                conn=c, **where)
        return
    token = ctx.services.tokens.create_bootstrap(p.name, inc.generation,
                                                 BOOTSTRAP_BOOT_TIMEOUTS * ctx.timing.boot_timeout, conn=c)
    script = ipxe.render(p, inc.generation, ctx.links, token, inc.boot_mac)
    ctx.runtime.register_boot(inc.boot_mac, p.name, inc.generation, script, conn=c)
    ctx.log("info", "boot", f"iPXE script registered for {inc.boot_mac} (generation {inc.generation})",
            conn=c, **where)


def _not_started(ctx: Ctx, inc, error: Exception) -> None:
    """A start that failed before its boot script existed or any power
    command went out: nothing can be running it, which is evidence enough,
    and its machine is not to blame (no fence). It is placed again shortly
    (``decide.NEVER_STARTED_RETRY``), away from what failed (a switch that
    stopped answering is out of placement by then)."""
    evidence = f"{NEVER_STARTED}: {error} (before any boot script or power command)"
    ctx.runtime.end_incarnation(inc.persona, inc.generation, evidence, failure=str(error))
    failing = starts_failing(ctx, inc.persona)
    if failing is not None:
        ctx.runtime.transition(inc.persona, State.POWERING_ON, Event.GIVE_UP, failing, host=inc.host)
        ctx.log("error", "controller", f"{inc.persona} is failed, not started again: {failing}", persona=inc.persona)
        release_in_background(ctx, inc)
        return
    ctx.runtime.transition(inc.persona, State.POWERING_ON, Event.NOT_STARTED, evidence, host=inc.host)
    if inc.generation > 1:
        # a persona that ran before is being brought back: the next try is a
        # retarget too (away from this host; a fenced server as a last resort)
        ctx.runtime.set_intent(inc.persona, move_kind=RETARGET, move_host=None)
    release_in_background(ctx, inc)


def starts_failing(ctx: Ctx, persona: str) -> str | None:
    """Why this persona's starts are to stop (``decide.give_up``), from its
    recent incarnations and an operator's last retry."""
    history = ctx.runtime.history(persona, limit=max(ctx.timing.start_failures, 2))
    retry_at = aware((ctx.runtime.intents().get(persona) or {}).get("retry_at"))
    return give_up(history, now(), ctx.timing, retry_at)

