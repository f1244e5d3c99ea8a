"""Operating personas and groups from the command line: start, stop, move,
place (dry run), confirm-dead, status, and a live group start."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from voe.cli import render
from voe.cli.client import ApiError

out = Console(soft_wrap=True)
STATE_STYLE = {"running": "green", "stopped": "dim", "blocked": "bold red", "failed": "bold red", "suspect": "yellow",
               "fencing": "red", "fenced": "red", "pending": "magenta", "waiting": "cyan"}

KindOpt = Annotated[str | None, typer.Option("--kind", help="vm or physical")]
ToOpt = Annotated[str | None, typer.Option("--to", help="a host name")]
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="follow until it settles")]


def _styled(state: str) -> str:
    style = STATE_STYLE.get(state, "blue")
    return f"[{style}]{state}[/{style}]"


def _where(s: dict) -> str:
    m = s.get("machine")
    if not m:
        return ""
    return f"VM {m['vm']} on {m['host']}" if m["kind"] == "vm" else f"physical {m['host']}"


def _follow(client, path: str, done, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    s = client.get(path)
    while not done(s) and time.monotonic() < deadline:
        time.sleep(0.25)
        s = client.get(path)
    return s


def add_persona_commands(app: typer.Typer) -> None:
    @app.command()
    def start(ctx: typer.Context, name: str, to: ToOpt = None, kind: KindOpt = None, wait: WaitOpt = True,
              timeout: Annotated[float, typer.Option(help="seconds to wait")] = 120):
        """Start a persona (placed by its policy, or --to a host / --kind)."""
        c = ctx.obj.client()
        c.post(f"/personas/{name}/start", {"to": to, "kind": kind})
        if wait:
            s = _follow(c, f"/personas/{name}/status", lambda s: s["state"] in ("running", "pending", "blocked"), timeout)
            out.print(f"{name}: {_styled(s['state'])} {_where(s)}")
            if s["why"]:
                out.print(f"  why: {s['why']}", markup=False, highlight=False)
            if s["state"] != "running":
                out.print(f"  {s['reason']}", markup=False)
                raise typer.Exit(1)

    @app.command()
    def stop(ctx: typer.Context, name: str, wait: WaitOpt = True,
             timeout: Annotated[float, typer.Option(help="seconds to wait")] = 120):
        """Stop a persona: its agent, then ACPI, then hard off, confirmed."""
        c = ctx.obj.client()
        c.post(f"/personas/{name}/stop")
        if wait:
            s = _follow(c, f"/personas/{name}/status", lambda s: s["state"] in ("stopped", "blocked"), timeout)
            out.print(f"{name}: {_styled(s['state'])}  {s['reason'] or ''}")

    @app.command()
    def move(ctx: typer.Context, name: str, to: ToOpt = None, kind: KindOpt = None, wait: WaitOpt = True,
             timeout: Annotated[float, typer.Option(help="seconds to wait")] = 180):
        """Stop a persona and start it elsewhere with the same MACs, IPs, VLANs and SAN identity."""
        c = ctx.obj.client()
        before = c.get(f"/personas/{name}/status")
        r = c.post(f"/personas/{name}/move", {"to": to, "kind": kind})
        dest = r["destination"]
        out.print(f"{name}: moving from {_where(before)} to {dest['kind']} {dest['host']}")
        if wait:
            gen = before["generation"]
            s = _follow(c, f"/personas/{name}/status",
                        lambda s: s["generation"] > gen and s["state"] in ("running", "blocked", "pending"), timeout)
            out.print(f"{name}: {_styled(s['state'])} {_where(s)} (generation {s['generation']})")

    @app.command()
    def place(ctx: typer.Context, name: str, to: ToOpt = None, kind: KindOpt = None,
              dry_run: Annotated[bool, typer.Option("--dry-run", help="explain only (the only mode)")] = True,
              as_json: render.JsonOpt = False):
        """Explain where a persona would be placed, and why, without acting."""
        d = ctx.obj.client().get(f"/personas/{name}/place", params={k: v for k, v in {"to": to, "kind": kind}.items() if v})
        if as_json:
            render.emit_json(d)
            raise typer.Exit(0 if d["ok"] else 1)
        head = f"{name} → {d['kind']} {d['host']}" if d["ok"] else f"{name} fits nowhere"
        out.print(head)
        out.print(f"  why: {d['why']}", markup=False, highlight=False)
        for kind_name, filters in d["ruled_out"].items():
            for f in filters:
                out.print(f"  {kind_name}: {f['filter']}", markup=False, highlight=False)
        raise typer.Exit(0 if d["ok"] else 1)

    @app.command("confirm-dead")
    def confirm_dead(ctx: typer.Context, name: str,
                     reason: Annotated[str, typer.Option(help="what you checked, for the audit log")]):
        """Give the evidence a blocked persona lacks (audited): its machine cannot run."""
        s = ctx.obj.client().post(f"/personas/{name}/confirm-dead", {"reason": reason})
        out.print(f"{name}: confirmation recorded; state {s['state']}")

    @app.command()
    def status(ctx: typer.Context, name: str, as_json: render.JsonOpt = False):
        """Where a persona runs, why, what its agent reports, and its incarnations."""
        s = ctx.obj.client().get(f"/personas/{name}/status")
        if as_json:
            render.emit_json(s)
            return
        show_status(s)


def show_status(s: dict) -> None:
    out.print(f"[bold]{s['name']}[/bold]: {_styled(s['state'])} (desired {s['desired']}, generation {s['generation']})")
    if s["machine"]:
        out.print(f"  runs on: {_where(s)}")
        out.print(f"  why: {s['why']}", markup=False, highlight=False)
    if s["reason"]:
        out.print(f"  last change: {s['reason']}", markup=False, highlight=False)
    agent = s.get("agent")
    if agent:
        out.print(f"  agent: ready={agent['ready']} uptime={agent['uptime']} s, "
                  f"last heartbeat {agent['last_heartbeat_age']} s ago")
        for net, addr in (agent["addresses"] or {}).items():
            out.print(f"    {net}: {addr}")
    boot = s.get("boot")
    if boot:
        reached = ", ".join(f"{b['stage']} {b['at'][11:19]}" for b in boot["stages"]) or "none yet"
        out.print(f"  boot stages of generation {boot['generation']}: {reached}", markup=False, highlight=False)
    if s.get("incarnations"):
        t = Table("gen", "machine", "started", "ready", "ended", "evidence / failure", title="incarnations")
        for i in s["incarnations"]:
            where = f"VM {i['vm']} on {i['host']}" if i["kind"] == "vm" else f"physical {i['host']}"
            ended = " — ".join(x for x in (i["evidence"], i.get("failure")) if x)
            t.add_row(str(i["generation"]), where, i["started_at"][11:19], (i["ready_at"] or "")[11:19],
                      (i["ended_at"] or "")[11:19], ended)
        out.print(t)


def add_group_commands(app: typer.Typer) -> None:
    @app.command()
    def start(ctx: typer.Context, name: str,
              partial: Annotated[bool, typer.Option(help="start the members that fit even if some do not")] = False,
              timeout: Annotated[float, typer.Option(help="seconds to wait for all to run")] = 300):
        """Place the whole group, start it in dependency order, show progress."""
        c = ctx.obj.client()
        began = time.monotonic()
        try:
            r = c.post(f"/groups/{name}/start", {"partial": partial})
        except ApiError as e:
            if e.status == 409 and isinstance(e.detail, dict):
                out.print(f"[red]{e.detail['message']}[/red]")
                for d in e.detail["placements"]:
                    mark = "ok" if d["ok"] else "NO FIT"
                    out.print(f"  {d['persona']}: {mark}: {d['why']}", markup=False, highlight=False)
                raise typer.Exit(1) from None
            raise
        _watch_group(c, name, r, began, timeout, want="running")

    @app.command()
    def stop(ctx: typer.Context, name: str,
             timeout: Annotated[float, typer.Option(help="seconds to wait for all to stop")] = 300):
        """Stop the group, dependents first."""
        c = ctx.obj.client()
        began = time.monotonic()
        r = c.post(f"/groups/{name}/stop")
        _watch_group(c, name, r, began, timeout, want="stopped")

    @app.command()
    def status(ctx: typer.Context, name: str, as_json: render.JsonOpt = False):
        """Every member's state and machine."""
        s = ctx.obj.client().get(f"/groups/{name}/status")
        if as_json:
            render.emit_json(s)
            return
        out.print(_group_table(s, {}, time.monotonic()))


def _group_table(s: dict, settled_at: dict[str, float], began: float) -> Table:
    t = Table("persona", "state", "machine", "time", "why", title=f"group {s['name']}")
    for m in s["members"]:
        took = f"{settled_at[m['name']] - began:.1f} s" if m["name"] in settled_at else ""
        t.add_row(m["name"], _styled(m["state"]), _where(m), took, m["why"] or m["reason"] or "")
    return t


def _watch_group(c, name: str, s: dict, began: float, timeout: float, want: str) -> None:
    settled: dict[str, float] = {}
    final = {want, "blocked", "pending"}
    with Live(_group_table(s, settled, began), console=out, refresh_per_second=8) as live:
        while time.monotonic() - began < timeout:
            s = c.get(f"/groups/{name}/status")
            for m in s["members"]:
                if m["state"] in final and m["name"] not in settled:
                    settled[m["name"]] = time.monotonic()
            live.update(_group_table(s, settled, began))
            if all(m["state"] in final for m in s["members"]):
                break
            time.sleep(0.2)
    bad = [m["name"] for m in s["members"] if m["state"] != want]
    out.print(f"{len(s['members']) - len(bad)}/{len(s['members'])} {want} in {time.monotonic() - began:.1f} s")
    if bad:
        raise typer.Exit(1)


def add_host_commands(app: typer.Typer) -> None:
    @app.command()
    def clear(ctx: typer.Context, name: str,
              reason: Annotated[str, typer.Option(help="what was repaired or checked, for the audit log")]):
        """Return a fenced host to service: placement may use it again."""
        r = ctx.obj.client().post(f"/hosts/{name}/clear", {"reason": reason})
        out.print(f"{name} is back in service (it was fenced: {r['cleared']})", markup=False)
