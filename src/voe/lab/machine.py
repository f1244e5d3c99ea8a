"""A lab machine behaves like hardware: power, a boot device, and an OS.

Powered on with boot device PXE (a VM: always network boot), it asks the
controller for its iPXE script by its boot MAC at ``/boot/ipxe/{mac}`` — the
URL a real iPXE chains to — and starts the persona's agent as a real OS
process with the script's parameters. No script: "no bootable device", as
hardware says; no answer: asked again, as iPXE does. Power off kills the
process tree; reset restarts it.

A network boot runs on a thread of its own, after the power call has
returned, as firmware boots after the BMC has answered: the lab's BMCs share
one I/O loop, and a boot inside it (an HTTP fetch, a process start) stalled
every other BMC of the lab for as long.

The OS is a backend (``ProcessOS``): a later backend can boot a real QEMU/KVM
guest instead, behind the same calls.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

from voe.drivers.boot.ipxe import nfs_root_path
from voe.lab.zygote import AgentZygote, ForkedAgent

VOE_ARGS = re.compile(r"^\s*set\s+voe_args\s+(.+?)\s*$", re.MULTILINE)
KERNEL_VOE = re.compile(r"^\s*kernel\s+\S+\s+(.*voe\.persona=.*)$", re.MULTILINE)


def nfs_root_here(script: str) -> Path | None:
    """The NFS root a script mounts, when that export's directory is on this
    machine (the lab and voe's image store share it): the lab boots the
    persona's OS in its real root tree, as an NFS mount would."""
    path = nfs_root_path(script)
    return Path(path) if path and Path(path).is_dir() else None


def parse_boot_args(script: str) -> str | None:
    """The agent's parameters from an iPXE script (``set voe_args ...``, or
    the ``voe.*`` words of a kernel line)."""
    m = VOE_ARGS.search(script)
    if m:
        return m.group(1)
    m = KERNEL_VOE.search(script)
    if m:
        return " ".join(w for w in m.group(1).split() if w.startswith("voe."))
    return None


def args_dict(args: str) -> dict[str, str]:
    return dict(w.split("=", 1) for w in shlex.split(args) if "=" in w)


@dataclass
class Boot:
    """What the last boot did: the OS it started, or why none."""

    outcome: str  # "os" | "no bootable device" | "hypervisor"
    persona: str | None = None
    generation: int | None = None
    at: float = field(default_factory=time.time)
    mac: str | None = None  # the NIC it network-booted from


def kill_group(proc: subprocess.Popen | ForkedAgent) -> None:
    """``proc`` and everything it started (its process group), at once, as power goes."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


class ProcessOS:
    """The OS of a lab machine: the persona's agent as a real process in its
    own process group (so power-off kills everything it started). The agent
    is ``agent`` run as a command, or forked from a pre-imported agent (see
    ``zygote``)."""

    def __init__(self, agent: list[str] | AgentZygote, root: Path):
        self.agent = agent
        self.local_root = root  # the machine's own disk
        self.root = root  # what the running OS has as /
        self.proc: subprocess.Popen | ForkedAgent | None = None
        self.frozen = False

    def start(self, args: str, proxy: str | None, root: Path | None = None) -> None:
        """The agent with the boot script's ``args``, reaching the
        controllers through ``proxy`` (the machine's network, see
        ``voe.lab.relay``) when given."""
        self.root = root or self.local_root
        self.root.mkdir(parents=True, exist_ok=True)
        argv = ["--cmdline", args, "--root", str(self.root), *(["--proxy", proxy] if proxy else [])]
        if isinstance(self.agent, AgentZygote):
            self.proc = self.agent.spawn(["--network-backend", "rendered", *argv], self.root / "agent.log")
        else:
            with open(self.root / "agent.log", "ab") as log:
                self.proc = subprocess.Popen(self.agent + argv, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
        self.frozen = False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None:
            kill_group(self.proc)
        self.proc = None
        self.frozen = False

    def acpi_shutdown(self) -> None:
        """The OS shuts down: the agent gets SIGTERM and a few seconds."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)

    def freeze(self, frozen: bool) -> None:
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGSTOP if frozen else signal.SIGCONT)
            except ProcessLookupError:
                return  # it exited since: nothing left to freeze or thaw
            self.frozen = frozen


class BootOptions:
    """What a BMC keeps for its server, whatever the server is: its boot
    device (a one-time override, or persistent) and the power it reads."""

    powered: bool
    boot_dev: tuple[str | None, bool] = (None, False)

    def power_state(self) -> str:
        return "on" if self.powered else "off"

    def set_boot(self, device: str | None, persistent: bool) -> None:
        self.boot_dev = (device, persistent)

    def boot_device(self) -> tuple[str | None, bool]:
        return self.boot_dev

    def _take_boot_device(self) -> str | None:
        """The device this start boots from; a one-time override is used up."""
        device, persistent = self.boot_dev
        if not persistent:
            self.boot_dev = (None, False)
        return device


class Machine(BootOptions):
    """A physical host or a VM of the lab."""

    def __init__(self, name: str, boot_macs: list[str], controller: ControllerLink, os_: ProcessOS, boots: Executor,
                 kind: str = "physical", local_disk: bool = False, on_change=None, link_up=None):
        """``boots``: where its network boots run (the lab's, shared by its machines)."""
        self.name = name
        self.boots = boots
        self.kind = kind
        self.boot_macs = boot_macs  # the firmware's network boot order
        self.link_up = link_up or (lambda mac: True)
        self.controller = controller
        self.os = os_
        self.local_disk = local_disk
        self.powered = False
        self.bmc_up = True
        self.last_boot: Boot | None = None  # None also while a network boot is under way
        self.lock = threading.RLock()
        self._boots = 0  # power-ons and resets so far: a network boot overtaken by a later one gives up
        self.on_change = on_change or (lambda m: None)

    # --- the BMC's table ------------------------------------------------------

    def power_on(self) -> None:
        with self.lock:
            if self.powered:
                return
            self.powered = True
        self._boot()

    def power_off(self) -> None:
        with self.lock:
            self.os.kill()
            self.powered = False
            self._boots += 1  # a network boot still fetching its script starts nothing
        self.on_change(self)

    def soft_off(self) -> None:
        """ACPI power button: an OS shuts down and the machine goes off; with
        no OS running nothing listens, as on real hardware."""
        if not self.os.alive():
            return
        self.os.acpi_shutdown()

        def finish():
            deadline = time.monotonic() + 5
            while self.os.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.power_off()
        threading.Thread(target=finish, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.os.kill()
            self._boots += 1  # with the kill: a network boot under way must not start an OS after it
            if not self.powered:
                return
        self._boot()

    # --- booting ------------------------------------------------------------

    def _boot(self) -> None:
        """A disk boot now, a network boot on its own thread (see the
        module's docstring)."""
        with self.lock:
            device = self._take_boot_device()
            self._boots += 1
            if self.kind == "vm" or device == "pxe":
                self.last_boot = None
                self.boots.submit(self._network_boot, self._boots)
                return
            self.last_boot = Boot("disk") if self.local_disk else Boot("no bootable device")
        self.on_change(self)

    def _network_boot(self, boot: int) -> None:
        """Like PXE firmware: try each NIC in boot order; a NIC without link
        (its switch is down or its port shut) gets no DHCP answer and the
        next one is tried. Gives up, starting nothing, if the machine was
        powered off or reset meanwhile."""
        found = None
        for mac in self.boot_macs:
            if not self.link_up(mac):
                continue
            script = self._fetch_script(mac, boot)
            args = parse_boot_args(script) if script is not None else None
            if args is not None:
                found = mac, script, args
                break
        with self.lock:
            if self._boots != boot:
                return
            if found is None:
                self.last_boot = Boot("no bootable device")
            else:
                mac, script, args = found
                self.os.start(args, self.controller.proxy_for(self.name), nfs_root_here(script))
                a = args_dict(args)
                self.last_boot = Boot("os", a.get("voe.persona"),
                                      int(a["voe.generation"]) if "voe.generation" in a else None, mac=mac)
        self.on_change(self)

    def _fetch_script(self, mac: str, boot: int) -> str | None:
        """The MAC's script, asked again after a pause while the controller
        does not answer (up to ``FETCH_TRIES`` times), as iPXE retries a
        fetch that timed out: a controller busy with a group start's level
        may answer late, and a machine that gave up at once sat powered on
        with nothing booted until the start's boot timeout. A controller
        that answers "no script" is not asked again."""
        for attempt in range(1, FETCH_TRIES + 1):
            try:
                return self.controller.boot_script(mac)
            except OSError:
                if attempt == FETCH_TRIES or self._boots != boot:  # or powered off or reset meanwhile
                    break
                time.sleep(FETCH_PAUSE)
        return None

    def observed(self) -> tuple[str, int | None, int, str] | None:
        """(persona, generation, pid, running | frozen | dead) of what this
        machine runs; None when it never booted a persona."""
        boot, proc = self.last_boot, self.os.proc
        if boot is None or boot.persona is None or proc is None:
            return None
        state = "dead" if not (self.powered and self.os.alive()) else ("frozen" if self.os.frozen else "running")
        return boot.persona, boot.generation, proc.pid, state

    def wait_booted(self, timeout: float = 10.0) -> Boot | None:
        """The last boot's outcome once a network boot under way has one."""
        deadline = time.monotonic() + timeout
        while self.powered and self.last_boot is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.last_boot

    # --- faults ---------------------------------------------------------------

    def hang(self, frozen: bool) -> None:
        """Under the machine's lock: a repair's thaw raced a fence's
        power-off killing the same process group (the thaw then signalled a
        group gone, and the lab's control call failed)."""
        with self.lock:
            self.os.freeze(frozen)
        self.on_change(self)

    def crash_os(self) -> None:
        self.os.kill()
        self.last_boot = Boot("crashed")
        self.on_change(self)


FETCH_TRIES = 6
FETCH_PAUSE = 1.0  # seconds between a boot script fetch that failed and the next


class ControllerLink:
    """How machines reach the controller: for boot scripts directly (its
    boot port, on the boot network), for agents through a per-machine proxy
    that a partition fault can cut (``voe.lab.relay``)."""

    def __init__(self, url: str, proxy_for=None):
        """``url``: the boot port, or several controllers' (comma-separated);
        ``proxy_for(machine)``: that machine's proxy URL."""
        self.urls = [u.strip().rstrip("/") for u in url.split(",") if u.strip()]
        self._proxy_for = proxy_for

    def boot_script(self, mac: str) -> str | None:
        """None when the controllers have no script for the MAC (one that
        answers speaks for all: they share one store); OSError when none
        answers."""
        for url in self.urls[:-1]:
            try:
                return self._boot_script(url, mac)
            except OSError:
                continue  # that controller is down: the next
        return self._boot_script(self.urls[-1], mac)

    @staticmethod
    def _boot_script(url: str, mac: str) -> str | None:
        try:
            with urllib.request.urlopen(f"{url}/boot/ipxe/{mac}", timeout=5) as r:
                return r.read().decode()
        except urllib.error.HTTPError:
            return None

    def proxy_for(self, machine: str) -> str | None:
        return self._proxy_for(machine) if self._proxy_for else None


def default_agent_cmd() -> list[str]:
    return [sys.executable, "-m", "voe.agent", "--network-backend", "rendered"]
