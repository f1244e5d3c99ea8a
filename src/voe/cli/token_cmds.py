"""``voe token create|list|revoke``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from voe.cli import render

app = typer.Typer(help="API tokens.", no_args_is_help=True)
out = Console(soft_wrap=True)


@app.command()
def create(ctx: typer.Context,
           name: Annotated[str, typer.Option(help="a name for the token, e.g. ci")],
           role: Annotated[str, typer.Option(help="viewer, operator or admin")] = "viewer"):
    """Create a token and print it (it is shown only this once)."""
    print(ctx.obj.client().post("/tokens", {"name": name, "role": role})["token"])


@app.command("list")
def list_(ctx: typer.Context,
          as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False):
    """List tokens (names and roles, never values)."""
    items = ctx.obj.client().get("/tokens")
    if as_json:
        render.emit_json(items)
        return
    t = Table("name", "role", "created", "revoked")
    for i in items:
        t.add_row(i["name"], i["role"], str(i["created_at"]), "yes" if i["revoked"] else "")
    out.print(t)


@app.command()
def revoke(ctx: typer.Context, name: str):
    """Revoke a token."""
    ctx.obj.client().delete(f"/tokens/{name}")
    out.print(f"revoked {name}")
