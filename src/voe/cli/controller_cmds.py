"""``voe controller list``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from voe.cli import render

app = typer.Typer(help="The controllers sharing the store.", no_args_is_help=True)
out = Console(soft_wrap=True)


@app.command("list")
def list_(ctx: typer.Context,
          as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False):
    """List the controllers: URL, whether it leads, its term, its last renewal."""
    items = ctx.obj.client().get("/controllers")
    if as_json:
        render.emit_json(items)
        return
    t = Table("name", "url", "leader", "term", "renewed")
    for c in items:
        t.add_row(c["name"], c["url"], "yes" if c["leader"] else "", str(c["term"] or ""), c["renewed_at"])
    out.print(t)
