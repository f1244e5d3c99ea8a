"""``voe``: the operator's command line. Every command but ``serve`` and
``lab`` talks to the controller's REST API."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from voe.cli import (
    agent_cmds,
    backup_cmds,
    controller_cmds,
    demo,
    driver_cmds,
    event_cmds,
    image_cmds,
    inventory_cmds,
    lab,
    operate_cmds,
    token_cmds,
)
from voe.cli.client import ApiError
from voe.cli.context import State
from voe.cli.yamlfile import DatacenterFile, FileError

app = typer.Typer(help="voe: personas, hardware and the datacenter they run in.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


@app.callback()
def main(ctx: typer.Context,
         url: Annotated[str | None, typer.Option(envvar="VOE_URL", help="controller URL")] = None,
         token: Annotated[str | None, typer.Option(envvar="VOE_TOKEN", help="API token")] = None,
         data_dir: Annotated[str | None, typer.Option(envvar="VOE_DATA_DIR", help="controller data directory")] = None,
         ca: Annotated[str | None, typer.Option(envvar="VOE_CA", help=(
             "CA bundle that signs the controller's certificate (default: the data dir's ca.pem)"))] = None):
    ctx.obj = State(url=url, token=token, data_dir=data_dir, ca=ca)
    ctx.call_on_close(ctx.obj.close)


@app.command()
def serve(ctx: typer.Context,
          host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="TCP port")] = 8470,
          public_url: Annotated[str | None, typer.Option(help="URL agents use to reach the controller")] = None,
          boot_port: Annotated[int, typer.Option(help=(
              "plain-HTTP port serving boot scripts and the CA's certificate, and nothing else"))] = 8480,
          public_boot_url: Annotated[str | None, typer.Option(help="URL machines fetch boot files from")] = None,
          tls_cert: Annotated[Path | None, typer.Option(help=(
              "server certificate (PEM) to serve instead of the one signed by the data dir's own CA"))] = None,
          tls_key: Annotated[Path | None, typer.Option(help="the key of --tls-cert (PEM, unencrypted)")] = None,
          tls_ca: Annotated[Path | None, typer.Option(help=(
              "the CA that signed --tls-cert, pinned by agents (default: agents trust their system's CAs)"))] = None,
          log_format: Annotated[str, typer.Option(envvar="VOE_LOG_FORMAT", help=(
              "text, or json: one object per line, for this process and those it starts"))] = "text",
          reconcile: Annotated[bool, typer.Option(help="run the reconciler (off: API only, e.g. a read replica)")] = True,
          agent_port: Annotated[int | None, typer.Option(help=(
              "serve booting machines and agents on this port, in a process of their own "
              "(see docs/agent-protocol.md)"))] = None,
          database_url: Annotated[str | None, typer.Option(
              envvar="VOE_DATABASE_URL", help="PostgreSQL URL; SQLite in the data dir when absent")] = None,
          name: Annotated[str | None, typer.Option(envvar="VOE_CONTROLLER_NAME", help=(
              "this controller's name among those sharing the database (default: HOST:PORT)"))] = None,
          lease: Annotated[float, typer.Option(envvar="VOE_LEASE", min=0.5, help=(
              "seconds a leader's lease lasts unrenewed: a dead leader is replaced within it"))] = 2.0):
    """Run the controller: API, console and reconciler over HTTPS, and the boot port.

    Any number may run against one PostgreSQL: one leads (it runs the
    reconciler), every one serves the API, the console and agents."""
    import logging
    import os
    import socket
    from urllib.parse import urlsplit

    import uvicorn

    from voe import logs
    from voe.api.boot_service import BootServer
    from voe.controller.services import Services
    from voe.drivers.boot.ipxe import ControllerLinks
    from voe.process import GRACE, KEEP_ALIVE, collect_cycles_less_often, open_files_to_the_limit
    from voe.server import Leadership, build
    from voe.store.leadership import Leases
    from voe.tls import TlsError, default_names, ensure, own

    try:
        logs.configure("controller", log_format)
    except ValueError as e:
        err.print(f"error: {e}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    log = logging.getLogger("voe.serve")
    open_files_to_the_limit()
    collect_cycles_less_often()
    services = Services.open(ctx.obj.data_dir, database_url, patient=True)
    token_file = services.ensure_admin_token()
    if token_file:
        log.info("admin token written to %s (mode 0600)", token_file)
    url = f"https://{host}:{port}"
    agents_url = public_url or (f"https://{host}:{agent_port}" if agent_port else url)
    boot_url = public_boot_url or f"http://{host}:{boot_port}"
    try:
        if (tls_cert is None) != (tls_key is None):
            raise TlsError("--tls-cert and --tls-key go together: give both, or neither for the data dir's own CA")
        tls = own(tls_cert, tls_key, tls_ca) if tls_cert and tls_key else \
            ensure(services.data_dir, default_names(host, urlsplit(agents_url).hostname or ""))
        ca_pem = tls.ca.read_bytes() if tls.ca else None
        me = name or f"{socket.gethostname()}:{port}"
        leases = Leases(services.engine, me)
        leases.register(url, agents_url, boot_url)
        if services.engine.dialect.name == "postgresql":
            services.runtime.beats.relay(me)

        def deposed(term: int) -> None:
            """Start again, as a follower, with nothing of the lost term
            kept: what it was doing, the new leader resumes."""
            log.warning("restarting as a follower (term %d is over)", term)
            try:
                if agents is not None:
                    agents.close()  # its port is bound again by the restarted controller
                if boot is not None:
                    boot.close()
            finally:  # whatever failed above: a deposed controller that never restarts never leads again
                os.execv(sys.executable, [sys.executable, "-m", "voe.cli.main", *sys.argv[1:]])

        app = build(services, ControllerLinks(agents_url, boot_url, tls.pin()), reconcile=reconcile, ca_pem=ca_pem,
                    leadership=Leadership(leases, lease, deposed))
        boot = BootServer(services, ca_pem, host, boot_port) if not agent_port else None
        agents = None
    except (ValueError, OSError) as e:  # a VOE_* setting, a certificate or a port: named, with the fix
        err.print(f"error: {e}", markup=False, highlight=False)
        services.close()
        raise typer.Exit(2) from None
    (services.data_dir / "controller.url").write_text(url + "\n")
    (services.data_dir / "boot.url").write_text(boot_url + "\n")
    (services.data_dir / "agents.url").write_text(agents_url + "\n")
    log.info("voe controller %s on %s (data: %s, store: %s)", me, url, services.data_dir,
             services.engine.dialect.name)
    log.info("TLS: %s%s", tls.cert, f", signed by {tls.ca}" if tls.ca else "")
    if boot is not None:
        boot.start()
        log.info("boot files on %s (plain HTTP: boot scripts and the CA's certificate only)", boot_url)
    if agent_port:
        from voe.api.agent_service import AgentService

        agents = AgentService(services.runtime, app.state.pace, services.data_dir, database_url, host, agent_port, tls,
                              boot_port, app.state.agent_urls)
        agents.start()
        controller = app.state.controller
        if controller is not None:  # silences count from when beats can arrive, not from the reconciler's start
            controller.no_beats_heard_yet()

            def hear_beats_once_served() -> None:
                if not agents.wait_until_serving():
                    log.error("the agent service does not answer: heartbeat silences count from now regardless")
                controller.beats_heard_from_now()

            threading.Thread(target=hear_beats_once_served, name="voe-agent-service-up", daemon=True).start()
        log.info("agents on %s and boot files on %s (plain HTTP: boot scripts and the CA's certificate only), "
                 "from the agent service", agents_url, boot_url)
    try:
        uvicorn.run(app, host=host, port=port, log_config=None, timeout_keep_alive=KEEP_ALIVE,
                    timeout_graceful_shutdown=GRACE,
                    ssl_certfile=str(tls.cert), ssl_keyfile=str(tls.key))
    finally:
        if boot is not None:
            boot.close()
        if agents is not None:
            agents.close()
        services.close()  # the beats due are written


def _load_file(path: Path) -> tuple[DatacenterFile, dict]:
    try:
        f = DatacenterFile(path)
        return f, f.data()
    except FileError as e:
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(2) from None


def _document_call(ctx: typer.Context, path: Path, prune: bool, dry_run: bool) -> dict:
    """Send a file to /apply; on refusal print every problem at its line."""
    f, doc = _load_file(path)
    try:
        return ctx.obj.client().post("/apply", {"document": doc, "prune": prune, "dry_run": dry_run})
    except ApiError as e:
        if e.status in (409, 422):
            for p in e.problems():
                loc = [x for x in p.get("loc", []) if x != "body"]
                where = f.where(loc)
                field = ".".join(str(x) for x in loc)
                err.print(f"{where}: {field + ': ' if field else ''}{p['msg']}", markup=False, highlight=False)
            err.print(f"[red]{path} rejected whole; nothing was changed[/red]")
            raise typer.Exit(2) from None
        raise


@app.command()
def apply(ctx: typer.Context,
          file: Annotated[Path, typer.Option("-f", "--file", help="datacenter YAML file")],
          prune: Annotated[bool, typer.Option(help="also delete what the file does not name")] = False,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="show the changes, write nothing")] = False):
    """Make the inventory match a file (creates and updates; deletes with --prune)."""
    result = _document_call(ctx, file, prune, dry_run)
    if not result["changed"]:
        out.print("no changes: the inventory already matches")
        return
    for ch in result["changes"]:
        out.print(_change_line(ch))
    verb = "would change" if dry_run else "changed"
    out.print(f"{len(result['changes'])} object(s) {verb}")


@app.command()
def diff(ctx: typer.Context,
         file: Annotated[Path, typer.Option("-f", "--file", help="datacenter YAML file")],
         prune: Annotated[bool, typer.Option(help="count deletions too")] = False):
    """Print what apply would change; exit 0 when nothing, 1 when something."""
    result = _document_call(ctx, file, prune, True)
    for ch in result["changes"]:
        out.print(_change_line(ch))
    raise typer.Exit(1 if result["changed"] else 0)


def _change_line(ch: dict) -> str:
    sign = {"create": "[green]+[/green]", "update": "[yellow]~[/yellow]", "delete": "[red]-[/red]"}[ch["op"]]
    kind = "switch" if ch["kind"] == "switches" else ch["kind"][:-1]
    fields = f" ({', '.join(ch['fields'])})" if ch["fields"] else ""
    return f"{sign} {kind} {ch['name']}{fields}"


@app.command()
def export(ctx: typer.Context):
    """Print the inventory as YAML that rebuilds it (secrets left out)."""
    from ruamel.yaml import YAML

    doc = ctx.obj.client().get("/export")
    sys.stdout.write("# voe export: BMC and hypervisor passwords are not exported; a file without\n"
                     "# them keeps the controller's, or add them (or ${ENV_VAR} references).\n")
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.dump(doc, sys.stdout)


app.command()(demo.demo)
app.command()(event_cmds.events)
app.command()(backup_cmds.backup)
app.command()(backup_cmds.restore)
_kind_apps = {kind: inventory_cmds.kind_app(kind) for kind in ("networks", "switches", "hosts", "personas", "groups")}
operate_cmds.add_persona_commands(_kind_apps["personas"])
image_cmds.add_persona_image_commands(_kind_apps["personas"])
operate_cmds.add_group_commands(_kind_apps["groups"])
operate_cmds.add_host_commands(_kind_apps["hosts"])
for _kind, _sub in _kind_apps.items():
    app.add_typer(_sub, name="switch" if _kind == "switches" else _kind[:-1])
app.add_typer(token_cmds.app, name="token")
app.add_typer(controller_cmds.app, name="controller")


app.add_typer(lab.app, name="lab")
app.add_typer(agent_cmds.app, name="agent")
app.add_typer(driver_cmds.app, name="driver")
app.add_typer(image_cmds.app, name="template")


def run() -> None:
    """Entry point that turns API errors into one clear line and exit 1."""
    try:
        app()
    except ApiError as e:
        for line in e.lines():
            err.print(f"error: {line}", markup=False, highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    run()

