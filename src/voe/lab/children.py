"""The programs a part of the lab runs for as long as it is up (dnsmasq,
nfs-ganesha, tgtd, Open vSwitch's daemons): each started inside the lab's
network namespace or beside it, its output in a file of the lab's state
directory, waited for until it is ready, and stopped with its owner, last
started first."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from voe.lab.netns import LabNetwork

START_PATIENCE = 15.0  # seconds for a program to be ready
STOP_PATIENCE = 3.0  # seconds for a program to end on SIGTERM before SIGKILL


class ChildError(RuntimeError):
    """A program did not start: which, and its log's end."""


class Children:
    def __init__(self, network: LabNetwork, state_dir: Path):
        self.network = network
        self.state_dir = state_dir
        self.procs: list[subprocess.Popen] = []

    def start(self, what: str, argv: list[str], ready: Callable[[], bool], log: Path | None = None,
              inside: bool = True) -> subprocess.Popen:
        """``argv`` running, once ``ready()``. Its output goes to ``log``
        (the program's own log, when it writes one there too) or to
        ``WHAT.out``; a program that exits or is not ready in time raises
        with that file's end."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = log or self.state_dir / f"{what.replace(' ', '-')}.out"
        with open(log, "ab") as out:
            proc = subprocess.Popen(self.network.command(argv) if inside else argv, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        deadline = time.monotonic() + START_PATIENCE
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                how = f"exited {proc.returncode}" if proc.poll() is not None else "no answer"
                raise ChildError(f"{what} did not start ({how}): {log.read_text(errors='replace')[-1500:]}")
            time.sleep(0.02)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(STOP_PATIENCE)
            except subprocess.TimeoutExpired:  # tgtd ignores SIGTERM while it has targets
                proc.kill()
                proc.wait(5)
        self.procs.clear()
