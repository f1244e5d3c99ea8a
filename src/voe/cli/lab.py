"""``voe lab``: run the emulated datacenter and drive it (faults, truth,
reach, status). The lab is hardware: the controller never imports it."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from voe.cli.client import data_dir, resolve_boot_url
from voe.cli.demo import EXAMPLE
from voe.cli.render import JsonOpt

app = typer.Typer(help="The emulated datacenter (IPMI, SNMP, a hypervisor API).", no_args_is_help=True)
out = Console(soft_wrap=True)
PortOpt = Annotated[int, typer.Option("--control-port", help="the lab's control API port")]
REACH_PATIENCE = 120.0
"""Seconds a ``reach`` may take: each guest's probe may first wait for its
port to open (``voe.lab.kvm.PROBE_PATIENCE``), then the packets cross."""


def _fetch(port: int, path: str, as_json: bool, **kw) -> dict | None:
    """GET from the lab; with --json, print it and return None."""
    data = _call(port, "GET", path, **kw)
    if as_json:
        json.dump(data, sys.stdout, indent=2)
        return None
    return data


def _call(port: int, method: str, path: str, timeout: float = 30.0, **kw):
    try:
        r = httpx.request(method, f"http://127.0.0.1:{port}{path}", timeout=timeout, **kw)
    except httpx.ConnectError:
        out.print(f"no lab answers on 127.0.0.1:{port}; start one with `voe lab up`", markup=False)
        raise typer.Exit(2) from None
    if r.status_code >= 400:
        out.print(f"error: {r.json().get('detail')}", markup=False)
        raise typer.Exit(2)
    return r.json()


LAB_NICENESS = 10
"""The lab stands in for other computers: hundreds of BMCs, switches and
persona OSes that in a datacenter each have a CPU of their own, and none of
them the controller's. On one machine they compete with the controller they
serve, and a measure of the controller would measure the emulation's
appetite. At this niceness the lab runs on whatever CPU the controller
leaves (its devices answer later when the machine is short, never sooner)."""


def yield_cpu(niceness: int) -> None:
    """Run this process at ``niceness`` at least (raising it needs no
    privilege; a lab started under ``nice`` keeps its own higher value)."""
    current = os.nice(0)
    if niceness > current:
        os.nice(niceness - current)


@app.command()
def up(ctx: typer.Context,
       file: Annotated[Path, typer.Option("-f", "--file", help="datacenter file")] = EXAMPLE,
       controller: Annotated[str | None, typer.Option(help=(
           "the controller's boot URL machines boot from, or several controllers' comma-separated, tried "
           "in turn (default: VOE_BOOT_URL, or the data dir's boot.url that voe serve writes)"))] = None,
       control_port: PortOpt = 8471,
       state_dir: Annotated[Path | None, typer.Option(help="where machines keep their files")] = None,
       machines: Annotated[str, typer.Option(help=(
           "process, or kvm: hosts that do not say (machine: {backend: ...}) are QEMU machines that network-boot "
           "for real"))] = "process",
       agents: Annotated[str | None, typer.Option(help=(
           "the controllers' agent URLs, comma-separated: with KVM machines their ports are forwarded into the "
           "lab's network (default: the data dir's agents.url that voe serve writes)"))] = None,
       dhcp_hosts: Annotated[Path | None, typer.Option(help=(
           "the controller's dhcp-hosts directory, which the KVM machines' dnsmasq answers from (default: the "
           "data dir's)"))] = None,
       nice: Annotated[int, typer.Option(min=0, max=19, help=(
           "CPU niceness of the emulated hardware and its machines' OSes (0: compete equally with the "
           "controller)"))] = LAB_NICENESS):
    """Start the emulated hardware of a datacenter file, until Ctrl-C."""
    yield_cpu(nice)  # first: every thread and process the lab starts inherits it
    from voe.cli.yamlfile import DatacenterFile
    from voe.domain.inventory import parse
    from voe.drivers.boot.dnsmasq import DHCP_HOSTS
    from voe.lab import control
    from voe.lab.lab import Lab
    from voe.process import collect_cycles_less_often

    collect_cycles_less_often()
    if machines not in ("process", "kvm"):
        raise typer.BadParameter("process or kvm", param_hint="--machines")
    controller = controller or resolve_boot_url(ctx.obj.data_dir)
    data = data_dir(ctx.obj.data_dir)
    if agents is None and (data / "agents.url").exists():
        agents = (data / "agents.url").read_text().strip()
    inv = parse(DatacenterFile(file).data())
    lab = Lab(inv, controller, state_dir or Path(f"/tmp/voe-lab-{control_port}"), machines=machines,
              agent_urls=agents or "", dhcp_hosts=dhcp_hosts or data / DHCP_HOSTS)
    lab.up()
    httpd = control.serve(lab, control_port)
    out.print(f"lab up: {len(lab.hosts)} hosts, {len(lab.switches)} switches, {len(lab.hypervisors)} hypervisors; "
              f"control on 127.0.0.1:{control_port}; machines boot from {controller}", markup=False)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    httpd.shutdown()
    lab.down()
    out.print("lab down: every machine powered off")


@app.command()
def status(control_port: PortOpt = 8471, as_json: JsonOpt = False):
    """Every endpoint: BMCs, switches, hypervisors."""
    s = _fetch(control_port, "/status", as_json)
    if s is None:
        return
    for b in s["bmcs"]:
        out.print(f"{b['host']:10} {b['protocol']} {b['address']}:{b['port']}  power {b['power']}  "
                  f"bmc {'up' if b['up'] else 'DOWN'}  boot {b['boot']}", markup=False)
    for sw in s["switches"]:
        out.print(f"{sw['name']:10} snmp {sw['address']}:{sw['port']}  {'DOWN' if sw['down'] else 'up'}", markup=False)
    for h in s["hypervisors"]:
        out.print(f"{h['host']:10} hypervisor {h['url']}  {'up' if h['up'] else 'DOWN'}  {len(h['vms'])} VMs", markup=False)


@app.command()
def truth(control_port: PortOpt = 8471, as_json: JsonOpt = False):
    """Which incarnations exist and whether two of one persona ever ran at once."""
    t = _fetch(control_port, "/truth", as_json)
    if t is None:
        return
    for i in t["incarnations"]:
        iso = " (isolated)" if i["isolated"] else ""
        out.print(f"{i['persona']:10} gen {i['generation']}  {i['machine']:10} pid {i['pid']}  {i['state']}{iso}", markup=False)
    out.print(f"{len(t['violations'])} violation(s) of the invariant in {t['samples']} samples", markup=False)
    raise typer.Exit(1 if t["violations"] else 0)


@app.command()
def fault(target: str, kind: Annotated[str, typer.Argument(help="power-loss, hang, resume, os-crash, partition, "
                                                                   "heal, bmc-down, bmc-up; a switch: down, up")],
          control_port: PortOpt = 8471):
    """Inject a fault into a host or a switch."""
    out.print(_call(control_port, "POST", "/fault", json={"target": target, "fault": kind})["done"], markup=False)


@app.command()
def reach(a: str, b: str, control_port: PortOpt = 8471, as_json: JsonOpt = False):
    """Can persona A reach persona B? By packets between the guests when both run on KVM machines (each
    address of B probed, and where it arrived), else by the switches' actual state."""
    r = _fetch(control_port, "/reach", as_json, params={"a": a, "b": b}, timeout=REACH_PATIENCE)
    if r is None:
        return
    out.print(f"{'yes' if r['reach'] else 'no'}: {r['why']}", markup=False)
    raise typer.Exit(0 if r["reach"] else 1)
