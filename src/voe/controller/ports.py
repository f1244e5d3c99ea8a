"""Switch ports follow what runs where. After any incarnation begins or
ends, the ports of its host are recomputed (``domain.port_plan``) and only
ports whose confirmed state differs are written. Writes queue per switch:
whoever holds a switch's slot writes every queued host's ports in one pass,
so two personas starting on one hypervisor host cannot lose each other's
VLANs, and a hundred starts at once cost a few passes. Servers a group
start reserved have their ports configured ahead, so that a level's starts
find them right and go straight to power-on."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager

from voe.controller.device_watch import DeviceWatch
from voe.controller.workers import Workers
from voe.domain import wiring
from voe.domain.inventory import Inventory
from voe.domain.port_plan import describe, plan_ports
from voe.domain.ports import PortConfig, carries
from voe.errors import DriverError
from voe.store.runtime import RuntimeStore

WRITE_WATCH = 0.1  # seconds between looks at the switch's probes while a pass writes to it


class PortKeeper:
    def __init__(self, runtime: RuntimeStore, switch_driver: Callable, log: Callable[..., None], switches: DeviceWatch,
                 workers: Workers):
        self.runtime = runtime
        self.switches = switches
        self.switch_driver = switch_driver
        self.log = log
        self.workers = workers
        # one write at a time per switch: a slot, not a lock, because the
        # pass's writer thread frees it (its caller may have stopped waiting)
        self._slots: defaultdict[str, threading.BoundedSemaphore] = defaultdict(lambda: threading.BoundedSemaphore(1))
        self._queue_lock = threading.Lock()
        self._queued: defaultdict[str, set[str]] = defaultdict(set)
        self._confirmed: dict[tuple[str, str], PortConfig] = {}
        self._learned: set[str] = set()
        # hosts being fenced at the fabric, not yet recorded as fenced (a
        # count: two VMs of one hypervisor host may be fenced at once)
        self._shutting: Counter[str] = Counter()
        # host -> what a group start reserved there, as (persona, kind): one
        # physical persona on a server, VMs on a hypervisor host
        self._reserved: dict[str, tuple[tuple[str, str], ...]] = {}
        # switch -> the pass writing it now: when it read its plan, and its hosts
        self._passes: dict[str, tuple[float, frozenset[str]]] = {}

    def reserve(self, load_inventory: Callable[[], Inventory], reserved: dict[str, tuple[tuple[str, str], ...]]) -> None:
        """The hosts now reserved (host -> the personas waiting to start
        there, with their kind), as the reconciler last saw them: the
        ports of each host whose reservation changed are brought to the
        plan in the background, in one pass per switch. A start that comes first, or a
        switch that fails meanwhile, costs nothing: each start still
        reconciles its own ports."""
        changed = sorted(h for h in self._reserved.keys() | reserved.keys() if self._reserved.get(h) != reserved.get(h))
        self._reserved = dict(reserved)
        if changed:
            self.workers.ports_ahead.submit(self._ahead, load_inventory, changed)

    def _ahead(self, load_inventory: Callable[[], Inventory], hosts: list[str]) -> None:
        known = load_inventory().by_name("hosts")
        try:
            self.reconcile(load_inventory, [h for h in hosts if h in known])
        except DriverError as e:
            self.log("info", "driver-call", f"ports of reserved servers not configured ahead ({e}): "
                     "each start configures its own")

    def switches_down(self) -> frozenset[str]:
        return frozenset(self.switches.down())

    def confirmed(self) -> dict[tuple[str, str], PortConfig]:
        """Each port's configuration as last read back from its switch."""
        return dict(self._confirmed)

    def _learn(self, sw_name: str, inv: Inventory, in_doubt_too: bool = False) -> None:
        """Read every cabled port of a switch the first time it is written
        (under its lock), so a port that already carries what it should is
        not written again: later passes, a failover's among them, write
        only what changes. A read refused only costs those writes; a read
        unanswered (its resends included) fails the pass at once: the
        switch died unnoticed, and the writes would wait out the same
        timeout again."""
        if sw_name in self._learned or sw_name in (self.switches.down() if in_doubt_too else self.switches.avoid()):
            return  # a switch in doubt is read when it answers again
        ports = sorted({n.port for h in inv.hosts for n in h.nics if n.switch == sw_name})
        try:
            seen = self.switch_driver(inv.by_name("switches")[sw_name]).read_ports(ports, retry=False)
        except DriverError as e:
            if e.transient:
                raise
            self.log("warning", "driver-call", f"could not read the ports of {sw_name}: {e}")
            return
        for port, cfg in seen.items():
            self._confirmed.setdefault((sw_name, port), cfg)
        self._learned.add(sw_name)

    def learn_ahead(self, inv: Inventory, sw_name: str) -> None:
        """Read a switch's cabled ports as soon as it is known (see
        ``_learn``), not in the first pass that writes it, which would put
        every switch's VLAN table read on a first group start's critical
        path. A
        switch only in doubt (slow to answer a probe under load) is read
        all the same: nothing waits for this read but the switch's passes."""
        if sw_name in self._learned:
            return
        with self._slots[sw_name]:
            try:
                self._learn(sw_name, inv, in_doubt_too=True)
            except DriverError:
                pass  # not answering: the first pass that writes it reads it

    def plan(self, inv: Inventory, hosts: Iterable[str]) -> dict[tuple[str, str], PortConfig]:
        """What the ports of ``hosts`` must carry: from the incarnations on
        those hosts only (with every live one, each start of a group cost
        time in proportion to all that ran already); on a reserved server
        with none, from the persona it is reserved for; and on a hypervisor
        host, from its reserved VMs too."""
        hosts = list(hosts)
        live = [wiring.Placement(i.persona, i.kind, i.host, i.boot_mac) for i in self.runtime.live(hosts)]
        fenced = self.runtime.fenced_hosts()
        shut = {h for h in hosts if self._shutting[h] or fenced.get(h, {}).get("reason", "").startswith("fabric")}
        return plan_ports(inv, live, self._reserved, hosts, self.switches.down(), shut)

    def reconcile(self, load_inventory: Callable[[], Inventory], hosts: Iterable[str], persona: str | None = None,
                  tidy_in_background: bool = False) -> None:
        """Bring the ports of ``hosts`` to what the live incarnations need.

        Group commit: a caller queues its hosts on each switch; whoever holds
        the switch's lock writes every queued host's ports in one pass, so a
        hundred personas starting at once cost a few passes, not a hundred.

        ``tidy_in_background``: a start waits only for the switches where
        its hosts' ports must carry VLANs; ports it merely clears (a trunk
        moved to the host's other switch) are written by a background pass,
        so a switch that is dying, and not yet known to be, cannot hold up
        or fail a start that does not use it."""
        asked_at = time.monotonic()
        hosts = list(hosts)
        inv = load_inventory()
        by_switch: defaultdict[str, set[str]] = defaultdict(set)
        for h in hosts:
            for nic in wiring.cabled_nics(inv, inv.by_name("hosts")[h]):
                by_switch[nic.switch].add(h)
        for sw in self._already_right(inv, hosts, by_switch, asked_at):
            del by_switch[sw]
        for sw, hs in by_switch.items():
            with self._queue_lock:
                self._queued[sw] |= hs

        def one(sw: str) -> Exception | None:
            if tidy_in_background and not self._needing_vlans(sw, by_switch[sw], load_inventory()):
                self.workers.port_tidy.submit(self._tidy, sw, load_inventory, persona, by_switch[sw])
                return None
            return self._switch(sw, load_inventory, persona, by_switch[sw])

        switches = sorted(by_switch)
        # one switch (a server with one cabled NIC, the usual case): on the
        # caller's thread, not queued for the pool behind a level's starts
        errors = [one(switches[0])] if len(switches) == 1 else list(self.workers.port_writes.map(one, switches))
        for e in errors:
            if e is not None:
                raise e

    def _already_right(self, inv: Inventory, hosts: list[str], by_switch: dict[str, set[str]],
                       asked_at: float) -> list[str]:
        """The switches where every port of ``hosts`` is known to carry what
        the plan asks now: nothing to write there, and no pass to wait for.
        A level's VMs land on a few hypervisor hosts whose uplinks carry
        their networks already, and a group start's servers have their
        ports configured ahead: such a start need not queue for a pass of
        its switch, behind the passes of the others.

        Why no pass can undo what is seen here: the caller's incarnation
        change was committed before it asked (``asked_at``), so a pass that
        reads its plan after that plans with it; one that finished has
        recorded what it wrote (``_confirmed``), or forgotten what it may
        have half written; and one under way that read its plan earlier,
        for any of these hosts, sends the caller the usual way. A switch in
        doubt, or not yet read by this controller, goes the usual way too,
        and so does one that has not answered a probe within a pass: it may
        have died a moment ago, unknown yet, and a start that took its
        ports as right would boot a server through a dead switch (stuck
        until its boot timeout); the usual way waits
        for the passes on it, and learns that it fails."""
        quiet = []
        for sw, mine in by_switch.items():
            under_way = self._passes.get(sw)
            if sw not in self._learned or sw in self.switches.avoid() or not self.switches.answered_lately(sw) or (
                    under_way is not None and under_way[0] <= asked_at and under_way[1] & mine):
                continue
            quiet.append(sw)
        if not quiet:
            return []
        plan = self.plan(inv, hosts)
        return [sw for sw in quiet
                if all(self._holds(sw, port, want) for (s, port), want in plan.items() if s == sw)]

    def _tidy(self, sw_name: str, load_inventory, persona, hosts: set[str]) -> None:
        error = self._switch(sw_name, load_inventory, persona, hosts)
        if error is not None:  # the hosts stay queued: the next pass or ``restore`` writes them
            self.log("warning", "driver-call", f"could not clear ports on {sw_name}: {error}", persona=persona)

    def _switch(self, sw_name: str, load_inventory, persona, mine: set[str]) -> Exception | None:
        """One pass for one switch; an error is returned to the caller's
        thread, with the hosts queued again (inside the lock) for the next.
        A switch that does not answer is not written at all (``restore``
        rewrites it when it is back); only a caller whose own hosts need
        VLANs on it fails, not every caller queued with it."""
        self.switches.await_verdicts([sw_name], doubt_is_enough=True)
        if self.switches.unheard(sw_name):
            # a controller just started: never heard from, and in doubt
            return self._unanswered(sw_name, mine, load_inventory())
        slot = self._slots[sw_name]
        needing: list[str] | None = None  # what this caller's hosts need there, asked once (a store read)
        while not slot.acquire(timeout=0.1):
            # a switch in doubt may hold its lock for whole SNMP timeouts: a
            # caller does not wait behind them once it is known silent, nor
            # one that only clears ports there while it is in doubt (its
            # hosts stay queued for the next pass, or for ``restore``)
            if sw_name in self.switches.failing():
                return self._unanswered(sw_name, mine, load_inventory())
            if sw_name in self.switches.avoid():
                if needing is None:
                    needing = self._needing_vlans(sw_name, mine, load_inventory())
                if not needing:
                    return None
        handed_over = False
        try:
            if sw_name in self.switches.failing():
                # down, or silent at its last probe: a write would wait out
                # SNMP timeouts only to fail (the hosts stay queued for the
                # next pass, or ``restore`` once it is back)
                return self._unanswered(sw_name, mine, load_inventory())
            with self._queue_lock:
                hosts, self._queued[sw_name] = self._queued[sw_name], set()
            if not hosts:
                return None  # an earlier pass already wrote this caller's ports
            done: Future = Future()
            self.workers.thread(self._write_holding, sw_name, slot, hosts, load_inventory(), persona, done,
                                name=f"voe-ports-{sw_name}")
            handed_over = True
            while True:
                try:
                    return done.result(timeout=WRITE_WATCH)
                except FutureTimeout:
                    # a switch that dies under a pass is known from its
                    # probe long before the pass's own SNMP timeouts run out
                    if sw_name in self.switches.failing():
                        return self._unanswered(sw_name, mine, load_inventory())
        finally:
            if not handed_over:
                slot.release()

    def _write_holding(self, sw_name: str, slot: threading.BoundedSemaphore, hosts: set[str], inv: Inventory,
                       persona: str | None, done: Future) -> None:
        """One switch's write, on a thread of its own that frees the
        switch's slot when the write ends (its caller may have stopped
        waiting for a switch gone silent); hosts it did not write are queued
        again for the next pass."""
        try:
            self._write_switch(sw_name, hosts, inv, persona)
            done.set_result(None)
        except Exception as e:
            if isinstance(e, DriverError) and e.transient:
                self.switches.mark_down(sw_name, str(e))
            with self._queue_lock:
                self._queued[sw_name] |= hosts
            done.set_result(e)
        finally:
            slot.release()

    def _unanswered(self, sw_name: str, mine: set[str], inv: Inventory) -> DriverError | None:
        """What a caller gets from a switch that does not answer: a start
        whose ports need VLANs there fails now (and is placed again on
        another switch); one that only clears ports there loses nothing."""
        stuck = self._needing_vlans(sw_name, mine, inv)
        if stuck:
            return DriverError(sw_name, f"configure ports {', '.join(stuck)}", "the switch does not answer",
                               transient=True)
        return None

    def _needing_vlans(self, sw_name: str, hosts: set[str], inv: Inventory) -> list[str]:
        """The ports of ``hosts`` on the switch that must carry VLANs now."""
        theirs = {nic.port for h in hosts for nic in wiring.cabled_nics(inv, inv.by_name("hosts")[h])
                  if nic.switch == sw_name}
        return sorted(port for (sw, port), want in self.plan(inv, hosts).items()
                      if sw == sw_name and port in theirs and want.vlans())

    def _write_switch(self, sw_name: str, hosts: set[str], inv: Inventory, persona: str | None) -> None:
        self._passes[sw_name] = (time.monotonic(), frozenset(hosts))  # before the plan's read (see ``_already_right``)
        try:
            plan = self.plan(inv, hosts)
            self._learn(sw_name, inv)
            todo = {port: want for (sw, port), want in plan.items()
                    if sw == sw_name and not self._holds(sw, port, want)}
            if not todo:
                return
            announced = self.workers.port_log.submit(self._announce, sw_name, todo, persona)
            try:
                self.switch_driver(inv.by_name("switches")[sw_name]).configure_ports(todo)
            except Exception:
                for port in todo:  # written or not, or half: unknown until read or written again
                    self._confirmed.pop((sw_name, port), None)
                wait([announced])  # logged too, but the switch's failure is the one to report
                raise
            announced.result()
            for port, want in todo.items():
                # confirmed by the driver's read-back (VLANs and admin state);
                # remember what was asked, mode included
                self._confirmed[(sw_name, port)] = want
        finally:
            del self._passes[sw_name]

    def _announce(self, sw_name: str, todo: dict[str, PortConfig], persona: str | None) -> None:
        """Each port's write logged while it is made (the pass returns once
        both are done), all in one transaction: a transaction per port, or
        the log written before the write, would keep the switch waiting for
        the store's writer under a group start's load."""
        def log_all(c) -> None:
            for port, want in sorted(todo.items()):
                self.log("info", "driver-call", f"configure {sw_name} port {port}: {describe(want)}",
                         persona=persona, conn=c)
        self.runtime.commits.run(log_all)

    @contextmanager
    def holding(self, sw_name: str, patient: bool, while_waiting: Callable[[], None]) -> Iterator[None]:
        """The switch's write slot, held by the caller's thread; unless
        ``patient``, ``while_waiting`` is called every tenth of a second
        while a pass holds it (it raises to stop waiting)."""
        slot = self._slots[sw_name]
        while not slot.acquire(timeout=None if patient else 0.1):
            while_waiting()
        try:
            yield
        finally:
            slot.release()

    @contextmanager
    def shutting(self, host: str) -> Iterator[None]:
        """While a fabric fence of ``host`` runs, every pass plans its ports
        admin down: a pass planned before the fence cannot bring a shut
        port up again."""
        self._shutting[host] += 1
        try:
            yield
        finally:
            self._shutting[host] -= 1

    def forget(self, sw_name: str, port: str) -> None:
        """What the port carries is unknown until read or written again."""
        self._confirmed.pop((sw_name, port), None)

    def route_around(self, load_inventory: Callable[[], Inventory], sw_name: str) -> None:
        """A switch stopped answering: the hypervisor hosts cabled to it move
        their uplink's VLANs to their next NIC (their VMs stay up). Servers
        trunked through it are cut off; failover replaces them."""
        self._rewrite_hosts_on(load_inventory, sw_name, "route around")

    def restore(self, load_inventory: Callable[[], Inventory], sw_name: str) -> None:
        """A switch answers again: forget what it was thought to carry, read
        it afresh and write every port of every host cabled to it."""
        with self._slots[sw_name]:
            self._learned.discard(sw_name)
            for key in [k for k in self._confirmed if k[0] == sw_name]:
                del self._confirmed[key]
        self._rewrite_hosts_on(load_inventory, sw_name, "restore the ports of")

    def _rewrite_hosts_on(self, load_inventory: Callable[[], Inventory], sw_name: str, what: str) -> None:
        inv = load_inventory()
        hosts = [h.name for h in inv.hosts if any(n.switch == sw_name for n in h.nics)]
        try:
            self.reconcile(load_inventory, hosts)
        except DriverError as e:
            self.log("warning", "driver-call", f"could not fully {what} {sw_name}: {e}")

    def _holds(self, switch: str, port: str, want: PortConfig) -> bool:
        seen = self._confirmed.get((switch, port))
        return seen is not None and carries(seen, want)

