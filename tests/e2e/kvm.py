"""A controller and a lab of real machines (``examples/kvm-lab.yaml``):
QEMU servers that network-boot through the lab's dnsmasq, fetch voe's
script, kernel and initrd, and mount their persona's root from the lab's
nfs-ganesha, on a network namespace of the lab's own. The controller
listens on loopback and publishes the lab network's gateway to machines,
as a controller on a boot network does."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from harness import dump, stop_process
from tests.conftest import free_port
from tests.e2e.conftest import ROOT, Stack
from voe.cli.yamlfile import DatacenterFile
from voe.controller.timing import Timing

KVM_LAB = ROOT / "examples" / "kvm-lab.yaml"
GATEWAY = "10.77.0.1"


def skip_without_machines() -> None:
    """Skips naming what is missing; CI has all of it."""
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("QEMU is missing (apt install qemu-system-x86 ipxe-qemu; scripts/setup.sh does)")
    if not os.path.exists("/dev/kvm"):
        pytest.skip("/dev/kvm is missing")
    if os.geteuid() != 0:
        pytest.skip("the lab's network namespace, bridge and taps need root (CI is root)")


def persona_template() -> Path:
    """The Debian base with this checkout's agent: a tree to make a template of."""
    from voe.agent.install import install_into
    from voe.images import debian

    base = debian.ensure(log=lambda m: None)
    staging = debian.cache_dir() / f"template-{base.directory.name}"
    stamp = staging / ".agent"
    agent = (ROOT / "src" / "voe" / "agent").stat().st_mtime_ns
    if not staging.exists() or not stamp.exists() or stamp.read_text() != str(agent):
        shutil.rmtree(staging, ignore_errors=True)
        subprocess.run(["cp", "-a", "--reflink=auto", str(base.root), str(staging)], check=True)
        install_into(staging)
        stamp.write_text(str(agent))
    return staging


def kvm_doc(tmp_path: Path) -> dict:
    """The KVM lab's datacenter on free ports, its storage files in ``tmp_path``."""
    doc = DatacenterFile(KVM_LAB).data()
    for sw in doc["switches"]:
        sw["settings"]["port"] = free_port(socket.SOCK_DGRAM)
    for h in doc["hosts"]:
        h["bmc"]["port"] = free_port(socket.SOCK_DGRAM if h["bmc"]["driver"] == "ipmi" else socket.SOCK_STREAM)
        if "storage" in h:
            h["storage"]["settings"] = {"export_dir": str(tmp_path / "exports"),
                                        "dbus_address": f"unix:path={tmp_path / 'ganesha-bus.sock'}"}
    return doc


@contextmanager
def kvm_stack(tmp_path: Path, timing: Timing | None = None) -> Iterator[Stack]:
    import uvicorn

    from voe.api.boot_service import BootServer
    from voe.controller.services import Services
    from voe.drivers.boot.ipxe import ControllerLinks
    from voe.process import GRACE
    from voe.server import Leadership, build
    from voe.store.leadership import Leases
    from voe.tls import default_names, ensure

    skip_without_machines()
    # a boot under software emulation takes a minute or two, and its firmware
    # some 20 s to ask for its script: a real server's POST is as slow
    timing = timing or Timing(boot_timeout=300.0, boot_script_timeout=90.0)
    doc = kvm_doc(tmp_path)
    dc = tmp_path / "dc.yaml"
    dc.write_text(dump(doc))
    services = Services.open(tmp_path / "data")
    services.ensure_admin_token()
    token = (services.data_dir / "admin-token").read_text().strip()
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    agents = f"https://{GATEWAY}:{port}"
    tls = ensure(services.data_dir, default_names("127.0.0.1", GATEWAY))
    ca_pem = tls.ca.read_bytes()
    boot = BootServer(services, ca_pem, "127.0.0.1", 0)
    boot.start()
    boot_url = f"http://{GATEWAY}:{boot.port}"
    leases = Leases(services.engine, "solo")
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
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60,
                        verify=ssl.create_default_context(cafile=tls.ca))
    assert http.post("/api/v1/apply", json={"document": doc}).status_code == 200
    lab_port = free_port()
    lab = subprocess.Popen([sys.executable, "-m", "voe.cli.main", "lab", "up", "-f", str(dc), "--controller", boot_url,
                            "--agents", agents, "--dhcp-hosts", str(services.data_dir / "dhcp-hosts"),
                            "--control-port", str(lab_port), "--state-dir", str(tmp_path / "lab")],
                           stdout=open(tmp_path / "lab.log", "w"), stderr=subprocess.STDOUT)
    s = Stack(url, boot_url, tls.ca, token, lab_port, dc, doc, http, lab.pid)
    deadline = time.monotonic() + 60
    while s.lab("status", "--json", check=False).returncode != 0:
        if lab.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("lab did not come up: " + (tmp_path / "lab.log").read_text()[-3000:])
        time.sleep(0.2)
    try:
        yield s
    finally:
        http.close()
        server.should_exit = True
        stop_process(lab, grace=30)
        t.join(10)
        boot.close()
        services.close()
