"""Tables for people, JSON for programs: one column set per kind."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]

def _hypervisor(host: dict) -> str:
    hv = host.get("hypervisor")
    return f"{hv['driver']} {hv['cpus']} vCPU {hv['memory']}" if hv else ""


COLUMNS: dict[str, list[tuple[str, Any]]] = {
    "networks": [("name", "name"), ("vlan", "vlan"), ("subnet", "subnet"), ("gateway", "gateway")],
    "switches": [("name", "name"), ("model", "model"), ("address", "address"), ("driver", "driver"),
                 ("ports", lambda s: len(s["ports"]))],
    "hosts": [("name", "name"), ("model", "model"), ("cpus", "cpus"), ("memory", "memory"),
              ("bmc", lambda s: f"{s['bmc']['driver']} {s['bmc']['address']}:{s['bmc'].get('port') or ''}"),
              ("nics", lambda s: ", ".join(f"{n['name']}→{n.get('switch')}:{n.get('port')}" for n in s["nics"])),
              ("hypervisor", _hypervisor)],
    "personas": [("name", "name"), ("boot", "boot"), ("cpus", "cpus"), ("memory", "memory"),
                 ("vnics", lambda s: ", ".join(f"{v['network']} {v['ip']} {v['mac']}" for v in s["vnics"])),
                 ("prefer", lambda s: ">".join(s["policy"]["prefer"])), ("desired", "desired")],
    "groups": [("name", "name"), ("members", lambda s: ", ".join(s["members"])),
               ("depends", lambda s: "; ".join(f"{k}→{','.join(v)}" for k, v in s["depends"].items())),
               ("desired", "desired")],
}


def cell(spec: dict, how: Any) -> str:
    v = how(spec) if callable(how) else spec.get(how)
    return "" if v is None else str(v)


def table(kind: str, items: list[dict]) -> Table:
    t = Table(show_header=True, header_style="bold")
    for title, _ in COLUMNS[kind]:
        t.add_column(title)
    for spec in items:
        t.add_row(*(cell(spec, how) for _, how in COLUMNS[kind]))
    return t


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def show(console: Console, spec: dict) -> None:
    """YAML, as the operator wrote it in the datacenter file."""
    from ruamel.yaml import YAML

    console.file.flush()
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.dump(spec, sys.stdout)
