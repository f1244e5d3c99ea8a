"""A lab machine that is a real computer: a QEMU virtual machine whose
firmware network-boots (QEMU's own iPXE ROM) from the NICs the inventory
gives its host, with exactly their MACs, on the lab's network
(``voe.lab.netns``).

Its BMC (IPMI or Redfish, unchanged on the wire) drives QEMU the way
virtualbmc drives libvirt: power on starts the QEMU process with the boot
order the BMC was last told, power off kills it, reset and a changed boot
order start it again, the power button is ACPI's (``system_powerdown``).
The lab's faults are real ones, over QMP: ``hang`` stops the vCPUs,
``resume`` continues them, ``os-crash`` injects an NMI that the persona's
kernel panics on (``kernel.unknown_nmi_panic``; the ``pvpanic`` device
reports it, and QEMU pauses the machine as hardware sits with a crashed
OS), ``partition`` takes its links down.

What runs is read from the machine, not from the lab's bookkeeping: QEMU's
own status (``query-status``), the process's life, and the kernel command
line the guest printed on its serial console (which persona, which
generation).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from qemu.qmp import QMPError
from qemu.qmp.legacy import QEMUMonitorProtocol

from voe.lab.machine import Boot, BootOptions, args_dict, kill_group
from voe.lab.netns import LabNetwork

log = logging.getLogger("voe.lab.kvm")

QEMU = "qemu-system-x86_64"
KERNEL_CMDLINE = re.compile(r"Kernel command line: (.*voe\.persona=\S+.*)$")
KERNEL_STARTS = re.compile(r"^(\[[ \d.]+\] )?Linux version ")
ANSI_STYLE = re.compile(r"\x1b\[[0-9;]*m")  # systemd's colours on a console
AGENT_STARTING = re.compile(r"voe-agent \d\d:\d\d:\d\d (\S+) generation (\d+) starting")
"""A SAN-booted OS's command line is its disk's: its agent says who it runs as."""
QMP_PATIENCE = 10.0  # seconds for a started QEMU to open its monitor
PROBE_PORT_NAME = "io.voe.probe"  # the persona's network probe answers there (voe.agent.probe)
EMULATED_CPUS = 1
"""vCPUs of a machine under software emulation, whatever its inventory
says. The clocks of two emulated vCPUs drift apart, so the guest kernel
gives up its TSC for the emulated HPET, and such a guest can freeze, in
its boot or while running, on a busy host. With one vCPU the kernel
keeps its TSC."""
PROBE_PATIENCE = 30.0
"""Seconds for the probe to answer one request. A request sent before the
guest's probe has opened its port (it starts once the agent is ready, and
may take seconds more in a guest still booting) waits in QEMU until it
does, and is answered then."""
PROBE_CONNECTIONS = 2
"""Connections one request is sent on before the probe counts as gone.
QEMU has closed a port's connection unanswered while its machine ran on,
its guest's probe just started; every request may be sent again (reads,
and probes that are sent twice anyway)."""


class KvmError(RuntimeError):
    """QEMU did not start or did not answer: the machine and why."""


def accelerator() -> tuple[str, str | None]:
    """``kvm`` where this machine's CPU virtualizes (``/dev/kvm`` and VT-x
    or AMD-V), else ``tcg`` and why: a KVM without them (a paravirtual
    one, as in some cloud sandboxes) runs no firmware. ``VOE_LAB_ACCEL``
    overrides."""
    wanted = os.environ.get("VOE_LAB_ACCEL")
    if wanted in ("kvm", "tcg"):
        return wanted, None if wanted == "kvm" else "VOE_LAB_ACCEL=tcg"
    if not os.path.exists("/dev/kvm"):
        return "tcg", "/dev/kvm is missing"
    flags = Path("/proc/cpuinfo").read_text()
    if not re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.MULTILINE):
        return "tcg", "the CPU offers no VT-x or AMD-V to this machine (its /dev/kvm cannot run firmware)"
    return "kvm", None


class ConsoleReader:
    """Who the OS a serial log shows was booted as: the last kernel command
    line naming a persona, or the agent's word when the command line is
    the OS's own; reading only what was written since the last look (the
    truth asks many times a second)."""

    def __init__(self) -> None:
        self._offset = 0
        self._partial = b""  # a line not yet ended
        self._boot: Boot | None = None

    def boot(self, log: Path) -> Boot | None:
        try:
            with open(log, "rb") as f:
                f.seek(self._offset)
                new = f.read()
        except FileNotFoundError:
            return self._boot
        self._offset += len(new)
        *lines, self._partial = (self._partial + new).split(b"\n")
        for line in lines:
            text = line.decode(errors="replace")
            if KERNEL_STARTS.search(text):  # a new kernel: nobody until it says
                self._boot = None
            m = KERNEL_CMDLINE.search(text)
            if m:
                a = args_dict(" ".join(w for w in m.group(1).split() if w.startswith("voe.")))
                self._boot = Boot("os", a.get("voe.persona"),
                                  int(a["voe.generation"]) if "voe.generation" in a else None)
            elif (m := AGENT_STARTING.search(text)) and (self._boot is None or self._boot.persona is None):
                self._boot = Boot("os", m.group(1), int(m.group(2)))
        return self._boot


def probe_console(log: Path) -> str:
    """What the network probe printed on a machine's console since its
    kernel last started (its start, or why it died), for an error that
    says it did not answer."""
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return "no console log"
    lines = text.splitlines()
    booted = max((i for i, line in enumerate(lines) if KERNEL_STARTS.search(line)), default=0)
    said = [ANSI_STYLE.sub("", line).strip() for line in lines[booted:] if "voe-probe" in line]
    return "its console: " + (" | ".join(said[-3:]) if said else "nothing from voe-probe since the kernel started")


@dataclass(frozen=True)
class KvmNic:
    mac: str
    tap: str
    boots: bool  # its option ROM network-boots (cabled to the boot network)


class KvmMachine(BootOptions):
    """A physical server of the lab as a QEMU process."""

    kind = "physical"

    def __init__(self, name: str, nics: list[KvmNic], network: LabNetwork, state_dir: Path, memory_mib: int,
                 accel: str, on_change=None, cpus: int = 1):
        self.name = name
        self.nics = nics
        self.boot_macs = [n.mac for n in nics if n.boots]
        self.network = network
        self.state_dir = state_dir
        self.memory_mib = memory_mib
        self.cpus = cpus if accel == "kvm" else EMULATED_CPUS
        self.accel = accel
        self.on_change = on_change or (lambda m: None)
        self.bmc_up = True
        self.proc: subprocess.Popen | None = None
        self._qmp: QEMUMonitorProtocol | None = None
        self.lock = threading.RLock()
        self._links = [True] * len(nics)  # each NIC's link as its cable and switch port allow
        self._console = ConsoleReader()
        self._probe_lock = threading.Lock()  # one request at a time on the port
        state_dir.mkdir(parents=True, exist_ok=True)

    @property
    def serial_log(self) -> Path:
        return self.state_dir / "serial.log"

    @property
    def probe_socket(self) -> Path:
        return self.state_dir / "probe.sock"

    def probe(self, request: dict) -> dict:
        """One request to the persona's network probe, over the machine's
        virtio-serial port, and its answer."""
        if not self.powered:
            raise KvmError(f"{self.name}: powered off, no probe to ask")
        with self._probe_lock:
            return ask_probe(self.name, self.probe_socket, request, self.serial_log)

    @property
    def powered(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # --- the BMC's table ------------------------------------------------------------

    def power_on(self) -> None:
        with self.lock:
            if self.powered:
                return
            self._start()
        self.on_change(self)

    def power_off(self) -> None:
        with self.lock:
            self._kill()
        self.on_change(self)

    def soft_off(self) -> None:
        """The ACPI power button: the guest's OS shuts down, and QEMU
        exits when it powers off."""
        if self.powered:
            self._command("system_powerdown")

    def reset(self) -> None:
        """A reset boots again with the boot order set now, as a server's
        firmware reads its boot options at every start."""
        with self.lock:
            if not self.powered:
                return
            self._kill()
            self._start()
        self.on_change(self)

    # --- faults -------------------------------------------------------------------------

    def hang(self, frozen: bool) -> None:
        with self.lock:
            if self.powered:
                self._command("stop" if frozen else "cont")
        self.on_change(self)

    def crash_os(self) -> None:
        with self.lock:
            if self.powered:
                self._command("inject-nmi")
        self.on_change(self)

    def set_links(self, up: list[bool]) -> None:
        """Each NIC's link, as its cable is pulled or plugged, its switch
        port shut or opened, its switch off or on: a link down carries no
        frame either way."""
        with self.lock:
            changed = [i for i, (was, now) in enumerate(zip(self._links, up, strict=True)) if was != now]
            self._links = list(up)
            if self.powered:
                for i in changed:
                    self._command("set_link", name=f"nic{i}", up=up[i])

    # --- what is true -------------------------------------------------------------------

    def status(self) -> str:
        """QEMU's run state (running, paused, guest-panicked, ...), or
        ``off`` when there is no QEMU."""
        if not self.powered:
            return "off"
        try:
            return self._command("query-status")["status"]
        except KvmError:
            return "off" if not self.powered else "unknown"

    @property
    def last_boot(self) -> Boot | None:
        """The persona and generation the running kernel was booted as,
        from its command line on the serial console."""
        if not self.powered:
            return None
        return self._console.boot(self.serial_log)

    def observed(self) -> tuple[str, int | None, int, str] | None:
        """(persona, generation, pid, running | frozen | dead) of what this
        machine runs, read from QEMU; None when it never booted a persona."""
        proc, boot = self.proc, self.last_boot
        if proc is None or boot is None or boot.persona is None:
            return None
        status = self.status()
        state = {"running": "running", "paused": "frozen", "off": "dead", "guest-panicked": "dead",
                 "shutdown": "dead", "internal-error": "dead"}.get(status, "running")
        return boot.persona, boot.generation, proc.pid, state

    # --- QEMU ---------------------------------------------------------------------------

    def _argv(self) -> list[str]:
        order = "c" if self._take_boot_device() == "disk" else "n"
        accel = "kvm" if self.accel == "kvm" else "tcg,thread=multi,tb-size=64"
        argv = [QEMU, "-name", self.name, "-accel", accel, "-machine", "pc", "-nodefaults", "-vga", "none",
                "-display", "none", "-m", str(self.memory_mib), "-smp", str(self.cpus),
                "-chardev", f"file,id=serial0,path={self.serial_log}", "-serial", "chardev:serial0",
                "-qmp", f"unix:{self.state_dir / 'qmp.sock'},server=on,wait=off",
                "-boot", f"order={order}", "-device", "pvpanic", "-action", "panic=pause",
                "-device", "virtio-rng-pci",  # entropy at once: the guest's boot would otherwise wait for its own
                "-device", "virtio-serial", "-chardev", f"socket,id=probe,path={self.probe_socket},server=on,wait=off",
                "-device", f"virtserialport,chardev=probe,name={PROBE_PORT_NAME}"]
        for i, nic in enumerate(self.nics):
            rom = [] if nic.boots else [",romfile="]
            # no offloads: the lab switch forwards frames as the guest wrote them, so they carry their checksums
            argv += ["-netdev", f"tap,id=net{i},ifname={nic.tap},script=no,downscript=no,vnet_hdr=off",
                     "-device", f"virtio-net-pci,netdev=net{i},id=nic{i},mac={nic.mac}{''.join(rom)}"]
        return argv

    def _start(self) -> None:
        sock = self.state_dir / "qmp.sock"
        sock.unlink(missing_ok=True)
        self.serial_log.write_bytes(b"")
        self._console = ConsoleReader()
        with open(self.state_dir / "qemu.log", "ab") as out:
            self.proc = subprocess.Popen(self.network.command(self._argv()), stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + QMP_PATIENCE
        while not sock.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.state_dir / "qemu.log").read_text(errors="replace")[-500:]
                self._kill()
                raise KvmError(f"{self.name}: QEMU did not start: {tail.strip()}")
            time.sleep(0.02)
        self._qmp = _monitor(sock)
        self._qmp.connect()
        self._qmp.settimeout(QMP_PATIENCE)
        for i, up in enumerate(self._links):
            if not up:
                self._command("set_link", name=f"nic{i}", up=False)

    def _kill(self) -> None:
        if self._qmp is not None:
            try:
                self._qmp.close()
            except (QMPError, OSError):
                pass
            self._qmp = None
        if self.proc is not None:
            kill_group(self.proc)
            self.proc = None

    def _command(self, command: str, /, **args) -> dict:
        """A QMP command; its arguments may be called anything (``set_link``
        has a ``name``)."""
        with self.lock:
            if self._qmp is None:
                raise KvmError(f"{self.name}: no QEMU monitor (powered off)")
            try:
                return self._qmp.cmd(command, **args)
            except (QMPError, OSError) as e:
                raise KvmError(f"{self.name}: QMP {command} failed: {e}") from None


def _monitor(sock: Path) -> QEMUMonitorProtocol:
    """A QMP client with an event loop of its own. The legacy client takes
    the loop of the thread that makes it, so two machines made by one
    thread would share a loop, and their commands from two threads (the
    truth checker's, a fault's) would run it twice at once. A thread made
    for the purpose has no loop: the client makes its own there."""
    made: list[QEMUMonitorProtocol] = []
    maker = threading.Thread(target=lambda: made.append(QEMUMonitorProtocol(str(sock))), name="lab-qmp-client")
    maker.start()
    maker.join()
    return made[0]


def ask_probe(machine: str, path: Path | None, request: dict, console: Path) -> dict:
    """One JSON line to the network probe listening behind ``path`` (a
    guest's virtio-serial port), and the line it answers; on a new
    connection when one closes unanswered (``PROBE_CONNECTIONS``). The
    request carries an id of its own: a guest that answers an earlier
    request after its asker gave up hands that answer to the next
    connection, which passes over it. A failure quotes what the probe
    printed on the machine's ``console``."""
    asked = {**request, "id": uuid.uuid4().hex}
    try:
        for attempt in range(1, PROBE_CONNECTIONS + 1):
            answer = _ask_once(machine, path, asked)
            if answer is not None:
                return answer
            log.warning("%s: the network probe's port closed without an answer to %s (connection %d of %d)",
                        machine, request.get("op"), attempt, PROBE_CONNECTIONS)
        raise KvmError(f"{machine}: the network probe's port closed without an answer to {request.get('op')}, "
                       f"{PROBE_CONNECTIONS} times: the machine went off or was reset")
    except KvmError as e:
        raise KvmError(f"{e}; {probe_console(console)}") from None


def _ask_once(machine: str, path: Path | None, asked: dict) -> dict | None:
    """The answer to ``asked`` on one connection; None when the port
    closes before it comes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(PROBE_PATIENCE)
        try:
            if path is None:
                raise FileNotFoundError("the machine has no probe port")
            s.connect(str(path))
            s.sendall(json.dumps(asked).encode() + b"\n")
            pending = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return None
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    answer = _probe_answer(machine, line)
                    if answer.get("id") == asked["id"]:
                        del answer["id"]
                        return answer
        except OSError as e:
            raise KvmError(f"{machine}: the network probe did not answer {asked.get('op')}: {e}") from None


def _probe_answer(machine: str, line: bytes) -> dict:
    try:
        answer = json.loads(line)
    except ValueError:
        raise KvmError(f"{machine}: the network probe answered {line[-200:]!r}") from None
    if not isinstance(answer, dict):
        raise KvmError(f"{machine}: the network probe answered {line[-200:]!r}")
    return answer
