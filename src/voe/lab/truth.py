"""Ground truth: which incarnations of each persona exist in the lab, and
whether each is running, frozen or dead, and isolated from the network.

The invariant of docs/design.md, checked from the outside: at no moment may two
incarnations of one persona both be not dead and not isolated. The checker
samples the truth (and is poked on every lab event) and records every moment
that breaks it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class IncarnationTruth:
    persona: str
    generation: int | None
    machine: str
    pid: int | None
    state: str  # running | frozen | dead
    isolated: bool
    why_isolated: str

    def live(self) -> bool:
        return self.state != "dead" and not self.isolated


def violations(incarnations: list[IncarnationTruth]) -> list[dict]:
    by_persona: dict[str, list[IncarnationTruth]] = {}
    for i in incarnations:
        if i.live():
            by_persona.setdefault(i.persona, []).append(i)
    return [{"persona": p, "incarnations": [asdict(i) for i in live]}
            for p, live in by_persona.items() if len(live) > 1]


class InvariantChecker:
    """Samples ``snapshot()`` every ``interval`` seconds (and on ``poke``)
    and keeps every violation seen, with its time."""

    def __init__(self, snapshot, interval: float = 0.05):
        self.snapshot = snapshot
        self.interval = interval
        self.seen: list[dict] = []
        self.samples = 0
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="lab-truth", daemon=True)

    def start(self) -> InvariantChecker:
        self.thread.start()
        return self

    def poke(self) -> None:
        self._poke.set()

    def check_now(self) -> list[dict]:
        found = violations(self.snapshot())
        with self._lock:
            self.samples += 1
            for v in found:
                self.seen.append({"at": time.time(), **v})
        return found

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_now()
            except Exception:  # a sample taken mid-change; the next one counts
                pass
            self._poke.wait(self.interval)
            self._poke.clear()

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()
        self.thread.join(2)
