"""The whole stack, as an operator runs it: a controller (with its
reconciler) on an HTTPS port signed by its own CA and its plain-HTTP boot
port, and the lab as a separate process emulating the review's datacenter
on free ports. The controller reaches the lab only over IPMI, SNMP and
HTTP, as it would reach real hardware."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness import dump, relocate, stop_process
from tests.conftest import EXAMPLE, free_port
from voe.cli.yamlfile import DatacenterFile
from voe.controller.timing import Timing
from voe.drivers.boot.dnsmasq import DHCP_HOSTS

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    url: str
    boot_url: str
    ca: Path
    token: str
    lab_port: int
    file: Path
    doc: dict
    http: httpx.Client
    lab_pid: int
    stop_controller: Callable[[], None]
    """The controller stops (the lab and its machines go on): nothing fails
    a persona over from here."""

    def lab(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "voe.cli.main", "lab", *args, "--control-port", str(self.lab_port)],
                              capture_output=True, text=True, check=check, timeout=150)

    def trusting(self) -> ssl.SSLContext:
        """What a client trusts to reach this stack's controller: its CA."""
        return ssl.create_default_context(cafile=self.ca)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """``voe`` as an operator runs it against this stack."""
        env = {**os.environ, "VOE_URL": self.url, "VOE_TOKEN": self.token, "VOE_CA": str(self.ca)}
        return subprocess.run([sys.executable, "-m", "voe.cli.main", *args], capture_output=True, text=True, env=env,
                              timeout=timeout)

    def lab_json(self, *args: str):
        return json.loads(self.lab(*args, "--json").stdout)

    def status(self, persona: str) -> dict:
        return self.http.get(f"/api/v1/personas/{persona}/status").json()

    def last_events(self, persona: str, n: int = 40) -> str:
        """The persona's newest events, oldest first: what a stuck wait says."""
        events = self.http.get("/api/v1/events/log", params={"persona": persona, "limit": n,
                                                             "newest_first": True}).json()
        return "\n".join(f"  {e['at']} {e['kind']}: {e['message']}" for e in reversed(events))

    def wait(self, persona: str, pred, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        s = self.status(persona)
        while not pred(s):
            if time.monotonic() > deadline:
                raise AssertionError(f"{persona} stuck: {s}\nits last events:\n" + self.last_events(persona))
            time.sleep(0.1)
            s = self.status(persona)
        return s


@pytest.fixture
def stack(tmp_path):
    """Controller + lab for the review datacenter (SQLite store)."""
    with running_stack(tmp_path) as s:
        yield s


@contextmanager
def running_stack(tmp_path: Path, timing: Timing | None = None, boot_from: str | None = None,
                  edit: Callable[[dict], None] | None = None, doc: dict | None = None,
                  public: str | None = None) -> Iterator[Stack]:
    """The stack; ``timing``: the controller's; ``boot_from``: the URL the
    lab's machines boot from, when not the controller's boot port;
    ``edit``: changes to the datacenter, seen by the controller and the lab
    alike; ``doc``: the datacenter, when not the review's; ``public``: the
    address the controller gives machines (the lab network's gateway, for
    KVM machines), its ports forwarded there by the lab."""
    import uvicorn

    from voe.api.boot_service import BootServer
    from voe.controller.services import Services
    from voe.drivers.boot.ipxe import ControllerLinks
    from voe.process import GRACE
    from voe.server import Leadership, build
    from voe.store.leadership import Leases
    from voe.tls import default_names, ensure

    if not (ROOT / "src" / "voe" / "cli" / "lab.py").exists():
        pytest.skip("the lab (voe lab) is not built yet")
    doc = doc or relocate(DatacenterFile(EXAMPLE).data())
    if edit is not None:
        edit(doc)
    dc = tmp_path / "dc.yaml"
    dc.write_text(dump(doc))
    services = Services.open(tmp_path / "data")
    services.ensure_admin_token()
    token = (services.data_dir / "admin-token").read_text().strip()
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    tls = ensure(services.data_dir, default_names("127.0.0.1", public or ""))
    ca_pem = tls.ca.read_bytes()
    boot = BootServer(services, ca_pem, "127.0.0.1", 0)
    boot.start()
    boot_url = f"http://{public or '127.0.0.1'}:{boot.port}"
    agents = f"https://{public}:{port}" if public else url
    lab_args = ("--agents", agents, "--dhcp-hosts", str(services.data_dir / DHCP_HOSTS)) if public else ()
    leases = Leases(services.engine, "solo")  # as `voe serve` on SQLite: it leads at once, for good
    leases.register(url, agents, boot_url)
    app = build(services, ControllerLinks(agents, boot_url, tls.pin()), timing, ca_pem=ca_pem,
                leadership=Leadership(leases, 2.0, on_deposed=lambda term: None))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           ssl_certfile=str(tls.cert), ssl_keyfile=str(tls.key),
                                           timeout_graceful_shutdown=GRACE))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.02)
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30,
                        verify=ssl.create_default_context(cafile=tls.ca))
    assert http.post("/api/v1/apply", json={"document": doc}).status_code == 200
    lab_port = free_port()
    lab = subprocess.Popen([sys.executable, "-m", "voe.cli.main", "lab", "up", "-f", str(dc),
                            "--controller", boot_from or boot_url, "--control-port", str(lab_port),
                            "--state-dir", str(tmp_path / "lab"), *lab_args],
                           env={**os.environ}, stdout=open(tmp_path / "lab.log", "w"), stderr=subprocess.STDOUT)
    def stop_controller() -> None:
        http.close()  # a kept TLS connection would hold the server's stop (see voe.process.GRACE)
        server.should_exit = True

    s = Stack(url, boot_url, tls.ca, token, lab_port, dc, doc, http, lab.pid, stop_controller)
    deadline = time.monotonic() + 30
    while True:
        if lab.poll() is not None:
            raise AssertionError("lab exited: " + (tmp_path / "lab.log").read_text()[-3000:])
        try:  # its control API, asked directly: a CLI process per look would slow the lab's own start
            if httpx.get(f"http://127.0.0.1:{lab_port}/status", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("lab did not come up: " + (tmp_path / "lab.log").read_text()[-3000:])
        time.sleep(0.2)
    # the controller began before the lab: it has seen the hypervisor absent,
    # and places no VM there until its watch hears it (as an operator waits)
    while (down := http.get("/api/v1/status").json()["hypervisors_down"]):
        assert time.monotonic() < deadline, f"the controller never heard hypervisor(s) {down}"
        time.sleep(0.1)
    try:
        yield s
    finally:
        stop_controller()
        stop_process(lab, grace=30)
        t.join(10)
        boot.close()
        services.close()
