"""Switch ports follow what runs where. After any incarnation begins or
ends, the ports of its host are recomputed from the live incarnations (not
patched), and only ports whose confirmed state differs are written. One lock
per switch: two personas starting on one hypervisor host cannot lose each
other's VLANs.

A server that a group start reserved for a persona still waiting for its
dependencies counts as that persona's, so its ports are configured ahead:
when the dependencies are ready, the level's starts find their ports right
and go straight to power-on. The server is off meanwhile (a reserved server
is a free one), so the VLANs reach nothing running. Likewise a hypervisor
host's uplink carries ahead the networks of the VMs reserved on it, besides
those of its VMs running: each VM's vNICs are bound to their own VLANs by
the hypervisor, so the VLANs reach no VM that is not on them, as on any
hypervisor host trunked for the VMs it may run."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout

from voe.domain import wiring
from voe.domain.inventory import Inventory
from voe.domain.models import Host
from voe.drivers.base import PortConfig, carries
from voe.errors import DriverError
from voe.controller.device_watch import DeviceWatch
from voe.store.runtime import RuntimeStore

_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="voe-ports")
_TIDY = ThreadPoolExecutor(max_workers=4, thread_name_prefix="voe-ports-tidy")
_AHEAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voe-ports-ahead")
_ANNOUNCE = ThreadPoolExecutor(max_workers=4, thread_name_prefix="voe-ports-log")
WRITE_WATCH = 0.1  # seconds between looks at the switch's probes while a pass writes to it


class GaveWay(DriverError):
    """A fabric fence that did not wait for a switch known silent, so that
    the next fence level could be tried first."""


class PortKeeper:
    def __init__(self, runtime: RuntimeStore, switch_driver: Callable, log: Callable[..., None], switches: DeviceWatch):
        self.runtime = runtime
        self.switches = switches
        self.switch_driver = switch_driver
        self.log = log
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
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
            _AHEAD.submit(self._ahead, load_inventory, changed)

    def _ahead(self, load_inventory: Callable[[], Inventory], hosts: list[str]) -> None:
        known = load_inventory().by_name("hosts")
        try:
            self.reconcile(load_inventory, [h for h in hosts if h in known])
        except DriverError as e:
            self.log("info", "driver-call", f"ports of reserved servers not configured ahead ({e}): "
                     "each start configures its own")

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
        ``_learn``), not in the first pass that writes it: a new
        datacenter's first group start read two dozen switches' VLAN tables
        on its roots' critical path, up to a second each under load. A
        switch only in doubt (slow to answer a probe under load) is read
        all the same: nothing waits for this read but the switch's passes."""
        if sw_name in self._learned:
            return
        with self._locks[sw_name]:
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
        occupied = {pl.host for pl in live}
        reserved = self._reserved
        live += [wiring.Placement(persona, kind, h) for h in hosts for persona, kind in reserved.get(h, ())
                 if kind == "vm" or h not in occupied]
        plan = wiring.port_plan(inv, live, hosts, self.switches.down())
        fenced = self.runtime.fenced_hosts()
        for name in hosts:
            if self._shutting[name] or fenced.get(name, {}).get("reason", "").startswith("fabric"):
                for nic in wiring.cabled_nics(inv, inv.by_name("hosts")[name]):
                    cfg = plan[(nic.switch, nic.port)]
                    plan[(nic.switch, nic.port)] = PortConfig(cfg.mode, cfg.native_vlan, cfg.tagged, admin_up=False)
        return plan

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
                _TIDY.submit(self._tidy, sw, load_inventory, persona, by_switch[sw])
                return None
            return self._switch(sw, load_inventory, persona, by_switch[sw])

        switches = sorted(by_switch)
        # one switch (a server with one cabled NIC, the usual case): on the
        # caller's thread, not queued for the pool behind a level's starts
        errors = [one(switches[0])] if len(switches) == 1 else list(_POOL.map(one, switches))
        for e in errors:
            if e is not None:
                raise e

    def _already_right(self, inv: Inventory, hosts: list[str], by_switch: dict[str, set[str]],
                       asked_at: float) -> list[str]:
        """The switches where every port of ``hosts`` is known to carry what
        the plan asks now: nothing to write there, and no pass to wait for.
        A level's two hundred VMs land on a few hypervisor hosts whose
        uplinks carry their networks already, and a group start's servers
        had their ports configured ahead; yet each start queued for a pass
        of its switch, behind the passes of the others.

        Why no pass can undo what is seen here: the caller's incarnation
        change was committed before it asked (``asked_at``), so a pass that
        reads its plan after that plans with it; one that finished has
        recorded what it wrote (``_confirmed``), or forgotten what it may
        have half written; and one under way that read its plan earlier,
        for any of these hosts, sends the caller the usual way. A switch in
        doubt, or not yet read by this controller, goes the usual way too,
        and so does one that has not answered a probe within a pass: it may
        have died a moment ago, unknown yet, and a start that took its
        ports as right booted a server through a dead switch (a fence's
        replacement, stuck until its boot timeout); the usual way waits
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
        lock = self._locks[sw_name]
        needing: list[str] | None = None  # what this caller's hosts need there, asked once (a store read)
        while not lock.acquire(timeout=0.1):
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
            threading.Thread(target=self._write_holding, args=(sw_name, lock, hosts, load_inventory(), persona, done),
                             name=f"voe-ports-{sw_name}", daemon=True).start()
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
                lock.release()

    def _write_holding(self, sw_name: str, lock: threading.Lock, hosts: set[str], inv: Inventory,
                       persona: str | None, done: Future) -> None:
        """One switch's write, on a thread of its own that releases the
        switch's lock when the write ends (its caller may have stopped
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
            lock.release()

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
            announced = _ANNOUNCE.submit(self._announce, sw_name, todo, persona)
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
        """Each port's write logged as it is made (the pass returns once
        both are done), all in one transaction: one each, a pass of 24
        ports queued 24 times for the store's writer and, under a group
        start's load, took a second before it wrote anything; even as one,
        waiting for it first cost a level's first passes half a second."""
        def log_all(c) -> None:
            for port, want in sorted(todo.items()):
                self.log("info", "driver-call", f"configure {sw_name} port {port}: {_describe(want)}",
                         persona=persona, conn=c)
        self.runtime.commits.run(log_all)

    def shut(self, inv: Inventory, host: Host, patient: bool, record: Callable[[list[str]], None]) -> list[str]:
        """Fence a host at the fabric: every cabled port admin down, each
        read back by the driver, then ``record`` (the fence's evidence in
        the store). Each write holds its switch's lock, and until recorded
        the host plans admin down in every pass: a pass planned before the
        fence (another VM of a hypervisor host starting or stopping) cannot
        bring a shut port up again. Unless ``patient`` (the last level
        left), a switch that is not answering fails the level at once
        instead of waiting out its timeouts, so the next level is tried."""
        switches = inv.by_name("switches")
        shut: list[str] = []
        self._shutting[host.name] += 1
        try:
            for nic in wiring.cabled_nics(inv, host):
                lock = self._locks[nic.switch]
                while not lock.acquire(timeout=-1 if patient else 0.1):
                    self._give_way_if_silent(nic)  # waiting behind a pass on a switch that went silent
                try:
                    if not patient:
                        self._give_way_if_silent(nic)
                    self._confirmed.pop((nic.switch, nic.port), None)
                    self.switch_driver(switches[nic.switch]).set_admin(nic.port, False)
                finally:
                    lock.release()
                shut.append(f"{nic.switch}:{nic.port}")
            if not shut:
                raise DriverError(host.name, "fence fabric", "no cabled switch port to shut")
            record(shut)
        finally:
            self._shutting[host.name] -= 1
        return shut

    def _give_way_if_silent(self, nic) -> None:
        if nic.switch in self.switches.failing():
            raise GaveWay(nic.switch, f"set port {nic.port} admin down", "the switch does not answer", transient=True)

    def route_around(self, load_inventory: Callable[[], Inventory], sw_name: str) -> None:
        """A switch stopped answering: the hypervisor hosts cabled to it move
        their uplink's VLANs to their next NIC (their VMs stay up). Servers
        trunked through it are cut off; failover replaces them."""
        self._rewrite_hosts_on(load_inventory, sw_name, "route around")

    def restore(self, load_inventory: Callable[[], Inventory], sw_name: str) -> None:
        """A switch answers again: forget what it was thought to carry, read
        it afresh and write every port of every host cabled to it."""
        with self._locks[sw_name]:
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


def _describe(cfg: PortConfig) -> str:
    tagged = ",".join(str(v) for v in sorted(cfg.tagged)) or "none"
    state = "up" if cfg.admin_up else "DOWN"
    return f"{cfg.mode}, native {cfg.native_vlan or 'none'}, tagged {tagged}, admin {state}"
