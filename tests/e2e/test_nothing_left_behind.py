"""Stopping the controller and the lab in any way short of SIGKILL (SIGTERM
to the process, SIGTERM to its process group, a terminal's Ctrl-C reaching
its group) ends every process they started: the lab's agent zygote and the
persona OSes (agents) it forked, each in a session of its own, and the
controller's agent service and driver processes. Checked by process list.
A lab killed outright (SIGKILL, or a shutdown that hung and was killed)
cannot power its machines off; its zygote, seeing the lab gone, ends the
agents itself."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from harness import dump, relocate
from tests.conftest import EXAMPLE, free_port
from voe.cli.yamlfile import DatacenterFile


def descendants(root: int) -> set[int]:
    """Every live process below ``root``, by their parents in /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_http(url: str, proc: subprocess.Popen, what: str, ca: Path | None = None) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            verify = ssl.create_default_context(cafile=ca) if ca is not None and ca.exists() else True
            if (ca is None or ca.exists()) and httpx.get(url, timeout=1, verify=verify).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, f"{what} did not come up"
        time.sleep(0.2)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGTERM to its group", "Ctrl-C to its group", "SIGKILL to the lab"])
def test_stopping_the_controller_and_the_lab_leaves_no_process_behind(tmp_path, how):
    dc = tmp_path / "dc.yaml"
    doc = relocate(DatacenterFile(EXAMPLE).data())
    dc.write_text(dump(doc))
    env = {**os.environ, "VOE_DATA_DIR": str(tmp_path / "data")}
    port, agent_port, lab_port, boot_port = free_port(), free_port(), free_port(), free_port()
    ca = tmp_path / "data" / "ca.pem"
    voe = [sys.executable, "-m", "voe.cli.main"]
    log = open(tmp_path / "procs.log", "w")
    controller = subprocess.Popen([*voe, "serve", "--port", str(port), "--agent-port", str(agent_port),
                                   "--boot-port", str(boot_port)], env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    lab = None
    try:
        wait_http(f"https://127.0.0.1:{port}/healthz", controller, "the controller", ca)
        token = (tmp_path / "data" / "admin-token").read_text().strip()
        api = httpx.Client(base_url=f"https://127.0.0.1:{port}/api/v1", headers={"Authorization": f"Bearer {token}"},
                           timeout=30, verify=ssl.create_default_context(cafile=ca))
        assert api.post("/apply", json={"document": doc}).status_code == 200
        lab = subprocess.Popen([*voe, "lab", "up", "-f", str(dc), "--controller", f"http://127.0.0.1:{boot_port}",
                                "--control-port", str(lab_port), "--state-dir", str(tmp_path / "lab")], env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(f"http://127.0.0.1:{lab_port}/status", lab, "the lab")
        for persona in ("oracle", "web-1"):  # a server's OS and a VM's
            assert api.post(f"/personas/{persona}/start", json={}).status_code == 202
        deadline = time.monotonic() + 60
        while not all(api.get(f"/personas/{p}/status").json()["state"] == "running" for p in ("oracle", "web-1")):
            assert time.monotonic() < deadline, "the personas did not start"
            time.sleep(0.2)
        started = descendants(lab.pid) | descendants(controller.pid)
        agents = {pid for pid in started if b"voe.agent" in Path(f"/proc/{pid}/cmdline").read_bytes()}
        assert len(agents) >= 2, "the personas' OSes run as processes below the lab"

        for proc in (lab, controller):
            if how == "SIGTERM":
                proc.send_signal(signal.SIGTERM)
            elif how == "SIGKILL to the lab":
                proc.send_signal(signal.SIGKILL if proc is lab else signal.SIGTERM)
            else:
                os.killpg(proc.pid, signal.SIGTERM if how.startswith("SIGTERM") else signal.SIGINT)
        for proc in (lab, controller):
            proc.wait(60)
        deadline = time.monotonic() + 10
        while (left := sorted(pid for pid in started if alive(pid))) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120] for pid in left]
    finally:
        for proc in (lab, controller):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
