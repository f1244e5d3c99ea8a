"""``voe driver check HOST|SWITCH``: can the controller reach this device,
and do its credentials work? Exit status 1 when anything failed."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from voe.cli import render

app = typer.Typer(help="Hardware drivers.", no_args_is_help=True)
out = Console(soft_wrap=True)


@app.command()
def check(ctx: typer.Context, name: Annotated[str, typer.Argument(help="a host or switch name")],
          as_json: render.JsonOpt = False):
    """Reach a host's BMC (and hypervisor) or a switch from the controller, with its stored credentials."""
    result = ctx.obj.client().post(f"/devices/{name}/check", {})
    if as_json:
        render.emit_json(result)
    else:
        for c in result["checks"]:
            if c["ok"]:
                out.print(f"[green]ok[/green]    {c['concern']} ({c['driver']}): {c['seen']}")
            else:
                hint = " (may be temporary: retry)" if c["transient"] else ""
                out.print(f"[red]FAILED[/red] {c['concern']} ({c['driver']}): {c['error']}{hint}")
    if not all(c["ok"] for c in result["checks"]):
        raise typer.Exit(1)
