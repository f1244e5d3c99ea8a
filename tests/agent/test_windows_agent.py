"""The agent's Windows paths, run on this machine with Windows replaced at
its one seam (``voe.agent.windows.Windows``): installed as a service with
sc.exe, started by a stand-in Service Control Manager, it reads its
parameters from the boot script voe serves for its NIC, trades its
bootstrap token, runs its network script, locks its credential down,
heartbeats, and stops when the service is stopped; it exits at once when
stale. Nothing here ran on Windows itself (see the README)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from voe.agent import main as agent_main
from voe.agent import windows
from voe.api.boot_service import BootServer
from voe.drivers.boot import ipxe


class FakeWindows(windows.Windows):
    """Windows as the agent sees it: its commands answered, the network
    script kept, the Service Control Manager played by a thread."""

    def __init__(self, macs: list[str]):
        self.macs = macs
        self.commands: list[list[str]] = []
        self.scripts: list[str] = []
        self.statuses: list[tuple[int, int]] = []
        self.handler = None
        self.running = threading.Event()

    def run(self, argv, stdin=None):
        self.commands.append(list(argv))
        out = ""
        if "Get-NetAdapter -Physical | ForEach-Object PermanentAddress" in argv:
            out = "\n".join(m.replace(":", "-").upper() for m in self.macs) + "\n"
        if "-File" in argv:
            self.scripts.append(Path(argv[argv.index("-File") + 1]).read_text())
        return subprocess.CompletedProcess(argv, 0, out, "")

    def start_dispatcher(self, name, service_main):
        assert name == "voe-agent"
        t = threading.Thread(target=service_main)  # the SCM calls ServiceMain on a thread of its own
        t.start()
        t.join(60)

    def register_handler(self, name, handler):
        self.handler = handler
        return "handle"

    def set_status(self, handle, state, exit_code=0, wait_hint_ms=0):
        assert handle == "handle"
        self.statuses.append((state, exit_code))
        if state == windows.SERVICE_RUNNING:
            self.running.set()


def test_install_and_uninstall_are_the_sc_exe_commands_an_administrator_would_type():
    python, launcher = r"C:\Program Files\Python312\python.exe", r"C:\Program Files\voe\voe-agent"
    commands = windows.install_commands(python, launcher, ["--boot-url", "http://10.0.0.1:8480", "--on-stop",
                                                           "poweroff"])
    assert commands == [
        ["sc.exe", "create", "voe-agent", "binPath=",
         '"C:\\Program Files\\Python312\\python.exe" "C:\\Program Files\\voe\\voe-agent" --service '
         '--boot-url http://10.0.0.1:8480 --on-stop poweroff', "start=", "auto", "DisplayName=", "voe agent"],
        ["sc.exe", "description", "voe-agent", "voe: the persona's network identity and heartbeats to its controller"],
        ["sc.exe", "failure", "voe-agent", "reset=", "86400", "actions=", "restart/5000/restart/5000/restart/5000"],
        ["sc.exe", "start", "voe-agent"]]
    assert windows.uninstall_commands() == [["sc.exe", "stop", "voe-agent"], ["sc.exe", "delete", "voe-agent"]]


def test_the_agent_installs_its_service_through_the_seam(monkeypatch):
    fake = FakeWindows([])
    monkeypatch.setattr(agent_main, "WINDOWS", fake)
    args = ["--boot-url", "http://10.0.0.1:8480", "--network-backend", "powershell"]
    with pytest.raises(SystemExit) as e:
        agent_main.main(["--install-service", *args])
    assert e.value.code == 0
    create = fake.commands[0]
    assert create[:4] == ["sc.exe", "create", "voe-agent", "binPath="]
    assert create[4].endswith("--service --boot-url http://10.0.0.1:8480 --network-backend powershell")
    assert [c[1] for c in fake.commands] == ["create", "description", "failure", "start"]
    fake.commands.clear()
    with pytest.raises(SystemExit):
        agent_main.main(["--uninstall-service"])
    assert fake.commands == windows.uninstall_commands()


@pytest.fixture
def controller(web_agent_service, services):
    """web-1 starting as generation 1: its boot script (with a bootstrap
    token) on a boot port, and an agent service over HTTPS."""
    agents, tls = web_agent_service
    web = services.inventory.load().by_name("personas")["web-1"]  # with the MACs the store assigned
    mac = web.vnics[0].mac
    boot = BootServer(services, tls.ca.read_bytes(), "127.0.0.1", 0)
    boot.start()
    links = ipxe.ControllerLinks(f"https://127.0.0.1:{agents.sock.getsockname()[1]}", f"http://127.0.0.1:{boot.port}",
                                 tls.pin())
    with services.engine.begin() as c:
        token = services.tokens.create_bootstrap("web-1", 1, 60.0, conn=c)
    services.runtime.register_boot(mac, "web-1", 1, ipxe.render(web, 1, links, token, mac))
    yield links.boot, [mac for mac in ("00:15:5d:00:00:01", mac)]  # a NIC voe does not know, then web-1's
    boot.close()


def run_service(fake: FakeWindows, argv: list[str]) -> dict:
    outcome: dict = {}

    def agent() -> None:
        try:
            agent_main.main(argv)
        except SystemExit as e:
            outcome["code"] = e.code

    t = threading.Thread(target=agent, daemon=True)
    t.start()
    outcome["thread"] = t
    return outcome


def test_the_agent_runs_as_a_windows_service_and_stops_with_it(controller, services, tmp_path, monkeypatch):
    boot_url, macs = controller
    fake = FakeWindows(macs)
    monkeypatch.setattr(agent_main, "WINDOWS", fake)
    outcome = run_service(fake, ["--service", "--boot-url", boot_url, "--network-backend", "powershell",
                                 "--root", str(tmp_path), "--on-stop", "poweroff"])
    assert fake.running.wait(10)
    deadline = time.monotonic() + 20
    while services.runtime.beats.of("web-1") is None:
        assert time.monotonic() < deadline, f"no beat reached the controller; commands: {fake.commands}"
        time.sleep(0.05)
    beat = services.runtime.beats.of("web-1")
    assert beat["generation"] == 1 and beat["ready"]
    # its network, by the script the agent rendered for this very configuration
    assert len(fake.scripts) == 1
    assert f"Use-VoeNic '{macs[1]}' 'front'" in fake.scripts[0]
    assert (tmp_path / "network.ps1").read_text() == fake.scripts[0]
    credential = tmp_path / "run" / "voe-agent" / "credential"
    assert ["icacls.exe", str(credential), "/inheritance:r", "/grant:r", "*S-1-5-18:F", "*S-1-5-32-544:F"] \
        in fake.commands

    fake.handler(windows.SERVICE_CONTROL_STOP)  # `sc.exe stop voe-agent`
    outcome["thread"].join(10)
    assert outcome["code"] == 0
    assert fake.statuses == [(windows.SERVICE_RUNNING, 0), (windows.SERVICE_STOP_PENDING, 0),
                             (windows.SERVICE_STOPPED, 0)]
    assert services.runtime.beats.of("web-1")["stopping"] is True  # told the controller before it went
    assert fake.commands[-1] == ["shutdown.exe", "/s", "/f", "/t", "0"]  # --on-stop poweroff


def test_a_stale_agent_service_stops_at_once_and_says_so_to_windows(controller, services, tmp_path, monkeypatch):
    boot_url, macs = controller
    fake = FakeWindows(macs)
    monkeypatch.setattr(agent_main, "WINDOWS", fake)
    outcome = run_service(fake, ["--service", "--boot-url", boot_url, "--network-backend", "powershell",
                                 "--root", str(tmp_path)])
    deadline = time.monotonic() + 20
    while services.runtime.beats.of("web-1") is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    services.runtime.end_incarnation("web-1", 1, "test: fenced")
    outcome["thread"].join(10)
    assert outcome["code"] == agent_main.EXIT_STALE
    assert fake.statuses[-1] == (windows.SERVICE_STOPPED, agent_main.EXIT_STALE)  # a failure: SCM recovery applies
    assert not any(c[0] == "shutdown.exe" for c in fake.commands)
