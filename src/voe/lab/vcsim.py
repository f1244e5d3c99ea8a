"""VMware's vCenter simulator (vcsim, govmomi's simulator package), as a
process: one datacenter, one cluster of ESX hosts named ``DC0_C0_Hn``,
plain HTTP on loopback. ``scripts/setup.sh`` builds it into
``build/vcsim`` from Debian's govmomi sources; ``VOE_VCSIM`` names
another binary."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

BUILT = Path(__file__).resolve().parents[3] / "build" / "vcsim"
FIRST_HOST = "DC0_C0_H0"
"""The name vcsim gives its first ESX host."""


class VcsimMissing(RuntimeError):
    pass


def binary() -> Path:
    path = Path(os.environ.get("VOE_VCSIM") or BUILT)
    if not path.is_file():
        raise VcsimMissing(f"no vCenter simulator at {path}: scripts/setup.sh builds it (Debian's golang-go and "
                           "golang-github-vmware-govmomi-dev), or set VOE_VCSIM")
    return path


class Vcsim:
    """A running simulator; it ends when ``stop`` closes its stdin (or its
    parent dies)."""

    def __init__(self, address: str, username: str, password: str, hosts: int = 1):
        self.proc = subprocess.Popen([str(binary()), "-l", address, "-hosts", str(hosts), "-username", username,
                                      "-password", password], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()
        if not line:
            self.proc.wait(5)
            raise VcsimMissing(f"vcsim did not start on {address} (exit {self.proc.returncode})")
        self.url = line.replace(f"{username}:{password}@", "")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
