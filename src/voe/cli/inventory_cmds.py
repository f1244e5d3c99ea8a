"""``voe network|switch|host|persona|group list|show|delete``: one generated
sub-command set per inventory kind."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from voe.cli import render

out = Console(soft_wrap=True)


def kind_app(kind: str) -> typer.Typer:
    singular = "switch" if kind == "switches" else kind[:-1]
    verbs = "Inspect, operate and delete" if kind in ("personas", "groups") else "Inspect and delete"
    app = typer.Typer(help=f"{verbs} {kind}.", no_args_is_help=True)

    @app.command("list", help=f"List {kind}.")
    def list_(ctx: typer.Context,
              as_json: render.JsonOpt = False,
              q: Annotated[str | None, typer.Option(help="substring of the name")] = None,
              label: Annotated[list[str] | None, typer.Option(help="key=value, repeatable")] = None):
        params = {k: v for k, v in {"q": q, "label": label}.items() if v}
        items = ctx.obj.client().list_all(kind, **params)
        if as_json:
            render.emit_json(items)
        else:
            out.print(render.table(kind, items))

    @app.command()
    def show(ctx: typer.Context, name: str,
             as_json: render.JsonOpt = False):
        """Show one object in full."""
        client = ctx.obj.client()
        spec = client.get(f"/{kind}/{name}")
        status = client.get(f"/personas/{name}/status") if kind == "personas" else None
        if as_json:
            render.emit_json({**spec, "status": status} if status else spec)
            return
        render.show(out, spec)
        if status:
            from voe.cli.operate_cmds import show_status

            show_status(status)

    @app.command()
    def delete(ctx: typer.Context, name: str):
        """Delete one object (refused while something uses it)."""
        ctx.obj.client().delete(f"/{kind}/{name}")
        out.print(f"deleted {singular} {name}")

    return app
