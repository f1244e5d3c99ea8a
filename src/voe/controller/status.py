"""Runtime status as the API, CLI and console show it: where a persona
runs, why it is there, what its agent reports, and where it has been."""

from __future__ import annotations

from voe.domain.inventory import Inventory
from voe.domain.lifecycle import BOOT_STAGES, LIVE_STATES
from voe.store.runtime import Incarnation, PersonaState, RuntimeStore
from voe.store.time import now


def persona_status(rt: RuntimeStore, inv: Inventory, name: str, history: bool = False) -> dict:
    """One persona's status; with ``history``, its incarnations and the
    boot stages its current incarnation reached."""
    st, inc = rt.state_of(name), rt.current(name)
    out = _status(inv, name, st, inc, rt.beats.of(name))
    if history:
        out["incarnations"] = [i.as_dict() for i in rt.history(name)]
        out["boot"] = _boot(rt, inc) if inc is not None else None
    return out


def _boot(rt: RuntimeStore, inc: Incarnation) -> dict:
    """The boot stages ``inc``'s machine reached, in order, and the last."""
    reached = rt.boot_stages([inc.persona]).get(inc.persona, {}).get(inc.generation, {})
    stages = [{"stage": s, "at": reached[s].isoformat()} for s in BOOT_STAGES if s in reached]
    return {"generation": inc.generation, "stages": stages, "last": stages[-1]["stage"] if stages else None}


def statuses(rt: RuntimeStore, inv: Inventory, names: list[str]) -> list[dict]:
    """Many personas' status from one read of each table: a group of a
    thousand is one query per table, not three thousand."""
    states, latest, heartbeats = rt.states(), rt.latest(), rt.beats.newest()
    return [_status(inv, n, states.get(n) or PersonaState.never_started(n),
                    latest.get(n), heartbeats.get(n)) for n in names]


def _status(inv: Inventory, name: str, st: PersonaState, inc: Incarnation | None, hb: dict | None) -> dict:
    p = inv.by_name("personas").get(name)
    live = inc is not None and inc.ended_at is None
    out = {
        "name": name,
        "state": st.state.value,
        "desired": p.desired if p else None,
        "since": st.since.isoformat(),
        "reason": st.reason,
        "generation": st.generation,
        "machine": {"kind": inc.kind, "host": inc.host, "vm": inc.vm} if live else None,
        "why": inc.why if live else None,
        "plan": st.plan,
        "agent": None,
    }
    if hb is not None and inc is not None and hb["generation"] == inc.generation and st.state in LIVE_STATES:
        report = hb["report"] or {}
        out["agent"] = {
            "ready": hb["ready"],
            "last_heartbeat_age": round((now() - hb["at"]).total_seconds(), 2),
            "addresses": report.get("addresses", {}),
            "uptime": report.get("uptime"),
            "detail": report.get("detail"),
            "wwpn": report.get("wwpn"),
        }
    return out


def group_status(rt: RuntimeStore, inv: Inventory, name: str) -> dict:
    g = inv.by_name("groups")[name]
    return {"name": name, "desired": g.desired, "depends": g.depends,
            "members": statuses(rt, inv, list(g.members))}
