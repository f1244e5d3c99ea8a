"""Every thread pool and shared lock of one controller, in one owner.

The controller makes one ``Workers`` when it starts, hands it to the parts
that run work in the background, and shuts it down when it stops (as
Ironic's conductor owns its executor). No module keeps a pool of its own:
two controllers in one process (the tests run several) share nothing, and
a stopped controller leaves no thread behind but those finishing a call."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from voe.controller.timing import Timing
from voe.store.leadership import act_for_term


class Workers:
    """The pools are apart so that one kind of work never queues behind
    another: placements behind power-ons, a fence's cross-check behind a
    group start's port writes, a probe behind either."""

    def __init__(self, timing: Timing, term: Callable[[], int | None] = lambda: None):
        """``term``: the term the controller leads when its threads start
        (see ``store.leadership``): their writes carry it."""
        self.term = term

        def pool(size: int, name: str) -> ThreadPoolExecutor:
            return ThreadPoolExecutor(max_workers=size, thread_name_prefix=name,
                                      initializer=lambda: act_for_term(term()))

        self.steps = pool(timing.workers, "voe-step")  # reconciler steps, at most one per persona
        self.placements = pool(2, "voe-place")  # a placement batch never waits for power-on steps
        self.prepare = pool(8, "voe-prepare")  # BMC sessions opened ahead, switches read when they appear
        self.grants = pool(16, "voe-grant")  # a start's storage grant, beside its switch ports
        self.releases = pool(16, "voe-release")  # what an ended incarnation held, off the critical path
        self.port_writes = pool(16, "voe-ports")  # one pass per switch of a start on several switches
        self.port_tidy = pool(4, "voe-ports-tidy")  # ports a start only clears
        self.ports_ahead = pool(1, "voe-ports-ahead")  # reserved servers' ports, one batch at a time
        self.port_log = pool(4, "voe-ports-log")  # a pass's log lines, written while it writes
        self.crosschecks = pool(16, "voe-crosscheck")  # a silent persona's devices asked
        self.probes = pool(8, "voe-probe")  # switch and hypervisor probes, and what their verdicts start
        self.bmc_slots = threading.BoundedSemaphore(timing.bmc_slots)
        """Servers taken through their BMC's power-on sequence at once;
        fences and cross-checks do not take a slot."""
        self.placement_lock = threading.Lock()
        """Placements are made one batch at a time, each against fresh
        capacity, so two personas never take the last slot of one machine."""
        self._all = (self.steps, self.placements, self.prepare, self.grants, self.releases, self.port_writes,
                     self.port_tidy, self.ports_ahead, self.port_log, self.crosschecks, self.probes)

    def thread(self, target: Callable[..., Any], *args: Any, name: str) -> threading.Thread:
        """A thread of this controller's for work that outlives its caller
        (a switch's write that a caller stopped waiting for)."""
        t = threading.Thread(target=self.acting(target), args=args, name=name, daemon=True)
        t.start()
        return t

    def acting(self, target: Callable[..., Any]) -> Callable[..., Any]:
        """``target``, run in a thread of its own acting for the term."""
        term = self.term()

        def run(*args: Any) -> Any:
            act_for_term(term)
            return target(*args)
        return run

    def shutdown(self, wait: bool = True) -> None:
        """Work not begun is dropped; with ``wait``, work under way ends first."""
        for pool in self._all:
            pool.shutdown(wait=wait, cancel_futures=True)


