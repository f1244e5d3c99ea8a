"""A lab hypervisor host: its VMs and the answers of its API. It runs only
while the host is powered and its OS is up; an OS crash or power loss
takes every VM and the API down (connection refused), while the host's BMC
still answers after an OS crash, as in the review's failure."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from voe.lab.json_api import JsonApi
from voe.lab.machine import Machine

VM_PATH = re.compile(r"^/v1/vms/([A-Za-z0-9._-]+)(?:/(start|shutdown|destroy))?$")


@dataclass
class Vm:
    name: str
    vcpus: int
    memory_mib: int
    macs: list[str]
    vlans: list[int]
    boot: str
    machine: Machine

    def as_dict(self) -> dict:
        state = "off"
        if self.machine.powered:
            state = "paused" if self.machine.os.frozen else "running"
        return {"name": self.name, "state": state, "vcpus": self.vcpus, "memory_mib": self.memory_mib,
                "macs": self.macs, "vlans": self.vlans, "boot": self.boot}


class Hypervisor:
    def __init__(self, host: Machine, url: str, username: str, password: str, root: Path,
                 make_vm_machine: Callable[[str, str, Path], Machine], cpus: int, memory_mib: int):
        self.host = host
        self.root = root
        self.cpus, self.memory_mib = cpus, memory_mib
        self.vms: dict[str, Vm] = {}
        self.api = JsonApi(self, url, username, password)
        self.make_vm_machine = make_vm_machine
        self.up = False

    # --- the host's OS ----------------------------------------------------------

    def boot(self) -> None:
        """The hypervisor OS came up (after power-on from its local disk).
        VMs come back defined but off, as after a real host reboot."""
        if not self.up:
            self.api.start()
            self.up = True

    def down(self) -> None:
        for vm in self.vms.values():
            vm.machine.power_off()
        if self.up:
            self.api.stop()
            self.up = False

    def hang(self, frozen: bool) -> None:
        for vm in self.vms.values():
            vm.machine.hang(frozen)
        (self.api.frozen.set if frozen else self.api.frozen.clear)()

    # --- the API ----------------------------------------------------------------

    def handle(self, method: str, path: str, body: dict) -> tuple[int, object]:
        if path == "/v1/host" and method == "GET":
            return 200, {"name": self.host.name, "cpus": self.cpus, "memory_mib": self.memory_mib, "vms": len(self.vms)}
        if path == "/v1/vms" and method == "GET":
            return 200, [vm.as_dict() for vm in self.vms.values()]
        m = VM_PATH.match(path)
        if not m:
            return 404, {"detail": f"no such resource {path}"}
        name, action = m.group(1), m.group(2)
        vm = self.vms.get(name)
        if method == "PUT" and action is None:
            return self._define(name, body)
        if vm is None:
            return 404, {"detail": f"no VM named {name}"}
        if method == "GET" and action is None:
            return 200, vm.as_dict()
        if method == "DELETE" and action is None:
            if vm.machine.powered:
                return 409, {"detail": f"VM {name} is running; destroy it first"}
            del self.vms[name]
            return 204, None
        if method == "POST" and action == "start":
            vm.machine.power_on()
            return 204, None
        if method == "POST" and action == "shutdown":
            vm.machine.soft_off()
            if not vm.machine.os.alive():
                vm.machine.power_off()  # a guest with no OS: the VM simply stops
            return 204, None
        if method == "POST" and action == "destroy":
            vm.machine.power_off()
            return 204, None
        return 405, {"detail": f"{method} not allowed on {path}"}

    def _define(self, name: str, body: dict) -> tuple[int, object]:
        try:
            macs = [str(m).lower() for m in body["macs"]]
            spec = dict(vcpus=int(body["vcpus"]), memory_mib=int(body["memory_mib"]), macs=macs,
                        vlans=[int(v) for v in body.get("vlans", [])], boot=body.get("boot", "network"))
        except (KeyError, TypeError, ValueError) as e:
            return 422, {"detail": f"bad VM definition: {e}"}
        if not macs:
            return 422, {"detail": "a VM needs at least one MAC"}
        old = self.vms.get(name)
        if old is not None:
            same = all(getattr(old, k) == v for k, v in spec.items())
            if same:
                return 200, old.as_dict()
            if old.machine.powered:
                return 409, {"detail": f"VM {name} is running with another definition"}
        machine = self.make_vm_machine(name, macs[0], self.root / "vms" / name)
        self.vms[name] = Vm(name, machine=machine, **spec)
        return 201, self.vms[name].as_dict()
