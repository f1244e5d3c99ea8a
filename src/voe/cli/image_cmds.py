"""``voe template list|show|create|delete``, and ``voe persona create
--from TEMPLATE`` / ``voe persona capture``: the image library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from voe.cli import render

app = typer.Typer(help="Persona image templates.", no_args_is_help=True)
out = Console(soft_wrap=True)


@app.command("list")
def list_(ctx: typer.Context, as_json: render.JsonOpt = False):
    """The template library (latest version of each)."""
    items = ctx.obj.client().get("/templates")
    if as_json:
        render.emit_json(items)
        return
    t = Table("name", "version", "boot", "kind", "size", "description")
    for i in items:
        t.add_row(i["name"], f"v{i['version']} ({i['versions']})", i["boot"], i["kind"], f"{i['bytes'] / 2**20:.1f} MiB",
                  i["description"])
    out.print(t)


@app.command()
def show(ctx: typer.Context, name: str, as_json: render.JsonOpt = False):
    """Every version of a template."""
    items = ctx.obj.client().get(f"/templates/{name}")
    if as_json:
        render.emit_json(items)
        return
    for v in items:
        out.print(f"v{v['version']}  {v['created']}  {v['kind']} {v['boot']}  from {v['source']}  {v['description']}")


@app.command()
def create(ctx: typer.Context, name: str,
           source: Annotated[Path | None, typer.Option("--from", help="a root tree or disk image on the "
                                                                         "controller's host")] = None,
           from_host: Annotated[str | None, typer.Option(help="capture a live server's root over SSH/rsync")] = None,
           path: Annotated[str, typer.Option(help="with --from-host: the root to copy")] = "/",
           description: Annotated[str, typer.Option(help="what it is")] = "",
           clean: Annotated[bool, typer.Option(help="remove host keys, machine-id, leases (a server's copy)")] = False):
    """Add a template, or a new version of one: from a tree or image, or from a running server (cleaned)."""
    if (source is None) == (from_host is None):
        raise typer.BadParameter("give --from PATH or --from-host HOST [--path /]")
    body = {"name": name, "description": description, "clean": clean,
            **({"source": path, "from_host": from_host} if from_host else {"source": str(source.resolve())})}
    r = ctx.obj.client().post("/templates", body)
    out.print(f"template {name} v{r['template']['version']} ({r['template']['bytes']} bytes)")
    for f in r["cleaned"]:
        out.print(f"  cleaned {f}")


@app.command()
def delete(ctx: typer.Context, name: str):
    """Delete a template no persona is based on."""
    ctx.obj.client().delete(f"/templates/{name}")
    out.print(f"deleted template {name}")


def add_persona_image_commands(personas: typer.Typer) -> None:
    @personas.command("create")
    def create_persona(ctx: typer.Context, name: str,
                       template: Annotated[str, typer.Option("--from", help="the template to clone")],
                       network: Annotated[list[str] | None, typer.Option(help="a network to cable, repeatable; "
                                                                                   "the first one boots")] = None,
                       cpus: int = 1, memory: str = "1GiB",
                       version: Annotated[int | None, typer.Option(help="template version; latest when absent")] = None,
                       ssh_key: Annotated[list[str] | None, typer.Option(help="authorized key, repeatable")] = None):
        """Create a persona from a template: its own copy of the image, a fresh identity."""
        vnics = [{"network": n, **({"boot": True} if i == 0 else {})} for i, n in enumerate(network or [])]
        r = ctx.obj.client().post(f"/templates/{template}/clone", {
            "persona": {"name": name, "cpus": cpus, "memory": memory, "vnics": vnics},
            "version": version, "ssh_keys": ssh_key or []})
        img = r["image"]
        out.print(f"persona {name} from {img['template']} v{img['version']}: {img['method']}, "
                  f"{img['bytes_written']} bytes written, image {img['path']}")
        for v in r["persona"]["vnics"]:
            out.print(f"  {v['network']}: {v['ip']} {v['mac']}")

    @personas.command()
    def capture(ctx: typer.Context, name: str,
                as_template: Annotated[str, typer.Option("--as", help="the template to create or add a version to")],
                description: str = ""):
        """Turn a persona's image into a template ("condense"), machine-specific files removed."""
        r = ctx.obj.client().post(f"/personas/{name}/capture", {"as_template": as_template, "description": description})
        out.print(f"template {as_template} v{r['template']['version']} captured from {name}")
        for f in r["cleaned"]:
            out.print(f"  cleaned {f}")
