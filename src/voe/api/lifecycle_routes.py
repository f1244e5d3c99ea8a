"""Operating personas and groups: start, stop, move, place (dry run),
confirm-dead, and the runtime status the console and CLI show.

These routes record *intent* (desired state, a move, a reservation); the
reconciler does the work and is the only writer of runtime state.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from voe.api.auth import Operator, Viewer
from voe.controller.status import group_status, persona_status, statuses
from voe.domain import capacity
from voe.domain.inventory import Inventory
from voe.domain.lifecycle import QUIET_STATES, State
from voe.domain.placement import Constraint, Placer, move_constraint, place_group
from voe.errors import Conflict, DriverError, NotFound
from voe.store.runtime import PersonaState
from voe.store.time import now

router = APIRouter(tags=["operate"])


class PlaceRequest(BaseModel):
    to: str | None = Field(default=None, description="a host name")
    kind: Literal["vm", "physical"] | None = None


class GroupStartRequest(BaseModel):
    partial: bool = Field(default=False, description="start what fits even when some members fit nowhere")


class ConfirmDeadRequest(BaseModel):
    reason: str = Field(min_length=3, description="what the operator saw: e.g. 'host unplugged, checked on site'")


def _services(request: Request):
    return request.app.state.services


def _persona(inv: Inventory, name: str):
    p = inv.by_name("personas").get(name)
    if p is None:
        raise NotFound("persona", name)
    return p


def _placer(request: Request, inv: Inventory, leaving: set[str] = frozenset()) -> Placer:
    rt = request.app.state.runtime
    allocations = [capacity.Allocation(i.persona, i.kind, i.host) for i in rt.live() if i.persona not in leaving]
    return Placer(capacity.machines(inv, allocations, rt.fenced_hosts()))


def _set_desired(request: Request, who: str, names: list[str], desired: str, group: str | None = None) -> None:
    def build(current: Inventory) -> Inventory:
        personas = [p.model_copy(update={"desired": desired}) if p.name in names else p for p in current.personas]
        groups = [g.model_copy(update={"desired": desired}) if g.name == group else g for g in current.groups]
        return current.model_copy(update={"personas": personas, "groups": groups})

    _services(request).inventory.write(build)
    target = f"group {group}" if group else ", ".join(names)
    _services(request).events.append("info", "audit", f"{who} set {target} desired {desired}", group=group,
                                     persona=names[0] if len(names) == 1 else None)


@router.post("/personas/{name}/start", status_code=202, summary="Start a persona (optionally on a host or kind)")
def start_persona(request: Request, name: str, body: PlaceRequest, who: Operator) -> dict:
    inv = _services(request).inventory.load()
    p = _persona(inv, name)
    rt = request.app.state.runtime
    state = rt.state_of(name).state
    if state in QUIET_STATES:
        decision = _placer(request, inv).place(p, Constraint(host=body.to, kind=body.kind))
        if not decision.ok:
            raise Conflict(decision.why)
        if body.to or body.kind:
            rt.set_intent(name, move_kind=body.kind or "any", move_host=body.to)
    if state == State.FAILED:
        rt.set_intent(name, retry_at=now())  # its starts are tried again, counted afresh
    _set_desired(request, who.name, [name], "running")
    return persona_status(request.app.state.runtime, inv, name)


@router.post("/personas/{name}/stop", status_code=202, summary="Stop a persona")
def stop_persona(request: Request, name: str, who: Operator) -> dict:
    inv = _services(request).inventory.load()
    _persona(inv, name)
    _set_desired(request, who.name, [name], "stopped")
    return persona_status(request.app.state.runtime, inv, name)


@router.post("/personas/{name}/move", status_code=202, summary="Stop a persona and start it elsewhere, same identity")
def move_persona(request: Request, name: str, body: PlaceRequest, who: Operator) -> dict:
    inv = _services(request).inventory.load()
    p = _persona(inv, name)
    rt = request.app.state.runtime
    current = rt.current(name)
    if current is None or current.ended_at is not None or p.desired != "running":
        raise Conflict(f"{name} is not running; use start (with --to or --kind) instead")
    constraint = move_constraint(body.kind or "any", body.to, current.host)
    decision = _placer(request, inv, leaving={name}).place(p, constraint)
    if not decision.ok:
        raise Conflict(f"cannot move {name}: {decision.why}")
    rt.set_intent(name, move_kind=body.kind or "any", move_host=body.to)
    _services(request).events.append("info", "audit", f"{who.name} asked to move {name} "
                                     f"(would go to {decision.machine.kind} {decision.machine.host})", persona=name)
    return {**persona_status(rt, inv, name), "destination": decision.as_dict()}


@router.get("/personas/{name}/place", summary="Explain where a persona would go, without acting")
def place_persona(request: Request, name: str, _: Viewer,
                  to: Annotated[str | None, Query()] = None,
                  kind: Annotated[Literal["vm", "physical"] | None, Query()] = None) -> dict:
    inv = _services(request).inventory.load()
    p = _persona(inv, name)
    return _placer(request, inv, leaving={name}).place(p, Constraint(host=to, kind=kind)).as_dict()


@router.post("/personas/{name}/confirm-dead", status_code=202,
             summary="An operator's evidence that a blocked persona's machine cannot run (audited)")
def confirm_dead(request: Request, name: str, body: ConfirmDeadRequest, who: Operator) -> dict:
    inv = _services(request).inventory.load()
    _persona(inv, name)
    rt = request.app.state.runtime
    if rt.state_of(name).state != State.BLOCKED:
        raise Conflict(f"{name} is {rt.state_of(name).state.value}, not blocked; only a blocked persona needs this")
    rt.set_intent(name, confirm_dead_by=who.name, confirm_dead_reason=body.reason)
    _services(request).events.append("critical", "audit", f"{who.name} confirms {name} dead: {body.reason}",
                                     persona=name)
    return persona_status(rt, inv, name)


@router.get("/personas/{name}/status", summary="Where a persona runs, its state, agent report and history")
def show_persona_status(request: Request, name: str, _: Viewer) -> dict:
    inv = _services(request).inventory.load()
    _persona(inv, name)
    return persona_status(request.app.state.runtime, inv, name, history=True)


@router.get("/status", summary="Every persona's runtime state, every host's fencing state, and the hypervisors "
                              "whose API does not answer (no new VMs go there)")
def status(request: Request, _: Viewer) -> dict:
    inv = _services(request).inventory.load()
    rt = request.app.state.runtime
    controller = request.app.state.controller
    return {
        "personas": statuses(rt, inv, [p.name for p in inv.personas]),
        "hosts": [{"name": h, **v, "since": v["since"].isoformat()} for h, v in rt.fenced_hosts().items()],
        "hypervisors_down": sorted(controller.hypervisors_down()) if controller is not None else [],
    }


@router.post("/hosts/{name}/clear", summary="Return a fenced host to service (audited)")
def clear_host(request: Request, name: str, body: ConfirmDeadRequest, who: Operator) -> dict:
    inv = _services(request).inventory.load()
    if name not in inv.by_name("hosts"):
        raise NotFound("host", name)
    rt = request.app.state.runtime
    fenced = rt.fenced_hosts().get(name)
    if fenced is None:
        raise Conflict(f"host {name} is not fenced")
    if fenced["reason"].startswith("fabric"):
        _power_off_before_reconnecting(request, inv.by_name("hosts")[name])
    rt.clear_host(name)
    _services(request).events.append("warning", "audit", f"{who.name} returned host {name} to service "
                                     f"(was fenced: {fenced['reason']}): {body.reason}", host=name)
    return {"host": name, "cleared": fenced["reason"]}


def _power_off_before_reconnecting(request: Request, host) -> None:
    """A host fenced at the fabric may still be running what was fenced:
    its ports come back with it, so its BMC must first confirm it off. A
    cleared host whose old incarnation woke on the network would run that
    persona twice."""
    controller = request.app.state.controller
    where = f"host {host.name} was fenced by shutting its switch ports and may still run an old incarnation"
    if controller is None or host.bmc is None:
        raise Conflict(f"{where}, and it has no BMC this controller can use: power it off by hand, then "
                       "confirm with the BMC configured")
    try:
        controller.power(host).power_off(confirm=True)
    except DriverError as e:
        raise Conflict(f"{where}; its BMC could not confirm it off ({e}): power it off, then clear it again") from None
    _services(request).events.append("warning", "audit", f"host {host.name} powered off through its BMC before "
                                     "its switch ports are returned to it", host=host.name)


@router.post("/groups/{name}/start", status_code=202, summary="Place a whole group, then start it in dependency order")
def start_group(request: Request, name: str, body: GroupStartRequest, who: Operator) -> dict:
    inv = _services(request).inventory.load()
    g = inv.by_name("groups").get(name)
    if g is None:
        raise NotFound("group", name)
    rt = request.app.state.runtime
    personas = inv.by_name("personas")
    states = rt.states()
    to_place = [personas[m] for m in g.members
                if (states.get(m) or PersonaState.never_started(m)).state in QUIET_STATES]
    decisions = place_group(_placer(request, inv), to_place)
    refused = [d for d in decisions if not d.ok]
    if refused and not body.partial:
        raise HTTPException(409, {"message": f"group {name} cannot start: {len(refused)} member(s) fit nowhere; "
                                             "nothing was started (use --partial to start the rest)",
                                  "placements": [d.as_dict() for d in decisions]})
    rt.set_plans({d.persona: {"kind": d.machine.kind, "host": d.machine.host, "why": d.why} if d.ok else None
                  for d in decisions})
    for d in decisions:
        if d.ok and states.get(d.persona) is not None and states[d.persona].state == State.FAILED:
            rt.set_intent(d.persona, retry_at=now())
    unplaced = {d.persona for d in refused}
    starting = [m for m in g.members if m not in unplaced]
    _set_desired(request, who.name, starting, "running", group=name)
    return {**group_status(rt, inv, name), "placements": [d.as_dict() for d in decisions]}


@router.post("/groups/{name}/stop", status_code=202, summary="Stop a group, dependents first")
def stop_group(request: Request, name: str, who: Operator) -> dict:
    inv = _services(request).inventory.load()
    g = inv.by_name("groups").get(name)
    if g is None:
        raise NotFound("group", name)
    _set_desired(request, who.name, list(g.members), "stopped", group=name)
    return group_status(request.app.state.runtime, inv, name)


@router.get("/groups/{name}/status", summary="Every member's state")
def show_group_status(request: Request, name: str, _: Viewer) -> dict:
    inv = _services(request).inventory.load()
    if name not in inv.by_name("groups"):
        raise NotFound("group", name)
    return group_status(request.app.state.runtime, inv, name)
