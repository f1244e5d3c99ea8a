"""``voe demo``: the controller, the emulated datacenter and the console in
one command, with the review's datacenter loaded. Each part runs as its own
process, as it would in production: the lab is hardware, reached only over
the wire."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from voe.cli.client import Client, Target
from voe.cli.yamlfile import DatacenterFile

out = Console(soft_wrap=True)
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "review-lab.yaml"


def _wait_http(url: str, timeout: float, what: str, proc: subprocess.Popen, ca: Path | None = None) -> None:
    """Until ``url`` answers; over TLS, checked against ``ca`` once the
    controller has made it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode}; see its output above")
        try:
            verify = ssl.create_default_context(cafile=ca) if ca is not None and ca.exists() else True
            if (ca is None or ca.exists()) and httpx.get(url, timeout=1, verify=verify).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not answer at {url} within {timeout:g} s")


def demo(file: Annotated[Path, typer.Option("-f", "--file", help="datacenter file")] = EXAMPLE,
         port: Annotated[int, typer.Option(help="controller and console port")] = 8470,
         lab_port: Annotated[int, typer.Option(help="lab control port")] = 8471,
         agent_port: Annotated[int, typer.Option(help="port of the controller's agent service (agents)")] = 8472,
         boot_port: Annotated[int, typer.Option(help="the controller's boot port (plain HTTP boot scripts)")] = 8480,
         data_dir: Annotated[Path | None, typer.Option(help="controller data dir (default: a fresh temporary one)")] = None,
         start_group: Annotated[str | None, typer.Option(help="start this group once everything is up")] = None):
    """Run the controller, the lab and the console, with a demo datacenter."""
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="voe-demo-"))
    url, agents_url = f"https://127.0.0.1:{port}", f"https://127.0.0.1:{agent_port}"
    ca = data_dir / "ca.pem"
    env = {**os.environ, "VOE_DATA_DIR": str(data_dir)}
    voe = [sys.executable, "-m", "voe.cli.main"]
    procs: list[subprocess.Popen] = []

    def shutdown(*_):
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()

    signal.signal(signal.SIGTERM, lambda *_: (shutdown(), sys.exit(0)))
    try:
        procs.append(subprocess.Popen(voe + ["serve", "--port", str(port), "--agent-port", str(agent_port),
                                             "--boot-port", str(boot_port)], env=env))
        _wait_http(f"{url}/healthz", 30, "the controller", procs[-1], ca)
        _wait_http(f"{agents_url}/healthz", 30, "the controller's agent service", procs[-1], ca)
        token = (data_dir / "admin-token").read_text().strip()
        client = Client(Target(url, token, str(ca)))
        result = client.post("/apply", {"document": DatacenterFile(file).data()})
        out.print(f"inventory: {len(result['changes'])} object(s) created from {file}")
        out.print(f"templates: {', '.join(_add_sample_templates(client)) or 'none (run scripts/setup.sh)'}")
        procs.append(subprocess.Popen(voe + ["lab", "up", "-f", str(file), "--controller", f"http://127.0.0.1:{boot_port}",
                                             "--control-port", str(lab_port)], env=env))
        _wait_http(f"http://127.0.0.1:{lab_port}/status", 60, "the lab", procs[-1])
        out.print("\n[bold]voe is up.[/bold]")
        out.print(f"  console: {url}/#token={token}   (the link signs you in; the browser asks to trust "
                  f"{ca}, the controller's own CA)", markup=False)
        out.print(f"  token:   {token}   (also in {data_dir}/admin-token)")
        cli = Path(sys.executable).parent / "voe"
        out.print(f"  try:     export VOE_DATA_DIR={data_dir}", markup=False)
        out.print(f"           {cli} group start sample-app", markup=False)
        out.print(f"           {cli} lab fault dl360-1 os-crash", markup=False)
        out.print("  Ctrl-C stops everything.\n")
        if start_group:
            client.post(f"/groups/{start_group}/start", {"partial": False})
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        raise SystemExit("a part of the demo exited; stopping the rest")
    except KeyboardInterrupt:
        out.print("stopping")
    finally:
        shutdown()


def _add_sample_templates(client: Client) -> list[str]:
    """The sample library built by scripts/setup.sh, offered in the console's
    palette (stand-ins: see voe.images.samples)."""
    from voe.images.samples import ROLES

    built = Path(__file__).resolve().parents[3] / "build" / "templates"
    have = {t["name"] for t in client.get("/templates")}
    added = []
    for role, (boot, description) in ROLES.items():
        source = built / (role if boot == "linux-nfs" else f"{role}.raw")
        if source.exists() and role not in have:
            client.post("/templates", {"name": role, "source": str(source), "description": description, "boot": boot})
            added.append(role)
    return added
