"""Scale: a datacenter of 10,000 personas and 2,000 hosts on PostgreSQL,
served by three controllers (``voe serve``, each with its agent service,
no reconciler: every CPU second measured is the API's and the beats').

Prints, against the targets of issue 30:

- applying the whole datacenter (one document), for the record;
- a page of ``GET /api/v1/personas`` (100 at a random offset) from each
  controller: p50 and p99 (target: p99 <= 100 ms);
- a one-persona change (``PATCH /api/v1/personas/NAME``): p50 and p99
  (target: <= 200 ms), and how long until a follower shows it;
- heartbeats: every persona has a live incarnation and an agent (the
  agent's own HTTP client, its own credential, the three agent services
  in the order its boot script would give), beating at each offered rate
  spread over the agents: beats answered per second, CPU per beat of the
  controllers, their agent services and PostgreSQL, and whether every
  answered beat is known to every controller (the relay), none dropped.
  Offering 10,000 beats a second needs more cores than a laptop has: the
  rate answered is what the machine reached, and the CPU per beat says
  what 10,000 a second would take.

    .venv/bin/python bench/scale.py [--personas 10000] [--hosts 2000] [--rates 500,1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from harness import Cluster, PrivatePostgres, cpu_seconds, helpers_cpu_seconds

SWITCH_PORTS = 48
NETWORKS = 4
PAGE = 100
WARM_RATE = 400  # beats a second in all while every agent opens its connection


def datacenter(personas: int, hosts: int) -> dict:
    """``hosts`` servers of one NIC each, cabled to 48-port switches, and
    ``personas`` NFS-root personas spread over four networks, with
    identities left for voe to fill."""
    switches = -(-hosts // SWITCH_PORTS)
    return {
        "networks": [{"name": f"net{i}", "vlan": 100 + i, "subnet": f"10.{i}.0.0/16"} for i in range(NETWORKS)],
        "switches": [{"name": f"sw{i:02d}", "address": "127.0.0.1", "ports": SWITCH_PORTS,
                      "settings": {"port": 9, "community": "private"}} for i in range(switches)],
        "hosts": [{"name": f"h{i:04d}", "cpus": 32, "memory": "256GiB",
                   "bmc": {"address": "127.0.0.1", "port": 9, "username": "admin", "password": "pw"},
                   "nics": [{"name": "eth0", "mac": f"00:0c:00:00:{i >> 8:02x}:{i & 255:02x}",
                             "switch": f"sw{i // SWITCH_PORTS:02d}", "port": str(i % SWITCH_PORTS + 1)}]}
                  for i in range(hosts)],
        "personas": [{"name": f"p{i:05d}", "cpus": 2, "memory": "4GiB",
                      "image": {"nfs_root": f"10.0.0.5:/export/p{i:05d}"},
                      "vnics": [{"network": f"net{i % NETWORKS}", "boot": True}]} for i in range(personas)],
    }


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] if values else float("nan")


def ms(values: list[float]) -> str:
    return f"p50 {pct(values, .5) * 1000:.1f} ms, p99 {pct(values, .99) * 1000:.1f} ms (n={len(values)})"


def timed(call) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def inventory_figures(c: Cluster, doc: dict, rng: random.Random) -> None:
    personas = len(doc["personas"])
    took = timed(lambda: c.request("POST", "/api/v1/apply", json={"document": doc}, timeout=600).raise_for_status())
    print(f"  apply of the whole datacenter (one document): {took:.1f} s")
    pages: list[float] = []
    for n, url in enumerate(c.urls):
        def page(url=url) -> None:
            r = c.http.get(f"{url}/api/v1/personas", params={"limit": PAGE, "offset": rng.randrange(personas)})
            r.raise_for_status()
        print(f"    c{n}: first page after the apply {timed(page) * 1000:.0f} ms (its inventory read whole)")
        pages += [timed(page) for _ in range(100)]
    print(f"  GET /api/v1/personas, {PAGE} a page at a random offset, from each controller: {ms(pages)}"
          f"   target p99 <= 100 ms")
    changes, seen = [], []
    for k in range(50):
        name = f"p{rng.randrange(personas):05d}"
        text = f"changed {k}"
        changes.append(timed(lambda name=name, text=text: c.http.patch(
            f"{c.urls[0]}/api/v1/personas/{name}", json={"description": text}).raise_for_status()))
        began = time.perf_counter()
        while c.http.get(f"{c.urls[1]}/api/v1/personas/{name}").json().get("description") != text:
            time.sleep(0.005)
        seen.append(time.perf_counter() - began)
    print(f"  one-persona change (PATCH) on c0: {ms(changes)}   target <= 200 ms")
    print(f"    then shown by c1 after {ms(seen)}")


def live_agents(c: Cluster, data: Path, database_url: str, names: list[str]) -> list[tuple[str, str]]:
    """A live incarnation, a running state and an agent credential for
    each persona, written in batches (as a datacenter running for a while)."""
    from sqlalchemy import delete, insert

    from voe.controller.services import Services
    from voe.store import schema
    from voe.store.runtime import Placed

    services = Services.open(data, database_url)
    creds = []
    try:
        for i in range(0, len(names), 500):
            batch = names[i:i + 500]
            outcome = services.runtime.place([Placed(n, "vm", f"hv{j % 50}", n, f"02:00:00:{j >> 16 & 255:02x}:"
                                                     f"{j >> 8 & 255:02x}:{j & 255:02x}", "bench")
                                              for j, n in enumerate(batch, start=i)], transition=False)
            assert all(g == 1 for g in outcome.values()), outcome
            with services.engine.begin() as conn:
                t = schema.persona_runtime
                conn.execute(delete(t).where(t.c.persona.in_(batch)))
                conn.execute(insert(t), [{"persona": n, "state": "running", "generation": 1} for n in batch])
                creds += [(n, services.tokens.replace(f"agent-{n}-1", "agent", persona=n, conn=conn)) for n in batch]
    finally:
        services.close()
    return creds


BODY = {"generation": 1, "ready": True, "stopping": False, "uptime": 1.0, "addresses": {}, "detail": "", "wwpn": None}


def beat_worker(pipe, urls: list[str], ca: str, creds: list[tuple[str, str]], first: int) -> None:
    """A process of agents: on ("beat", rate, seconds) it sends beats at
    ``rate`` a second in all, each agent in turn, and answers with what
    was answered, the latencies, and each agent's last answered beat (the
    wall clock when it was sent)."""
    from voe.agent.client import Controller

    agents = []
    for k, (name, token) in enumerate(creds):
        start = (first + k) % len(urls)  # as the boot scripts spread them (``ipxe._spread``)
        agents.append((name, Controller(",".join(urls[start:] + urls[:start]), token, ca)))
    busy = [False] * len(agents)
    pool = ThreadPoolExecutor(max_workers=48)
    while (order := pipe.recv()) is not None:
        _, rate, seconds = order
        round_ = _Round(agents, busy)
        began, n = time.monotonic(), 0
        while (due := began + n / rate) < began + seconds:
            time.sleep(max(0.0, due - time.monotonic()))
            k = n % len(agents)
            n += 1
            if busy[k]:
                round_.skipped += 1
                continue
            busy[k] = True
            pool.submit(round_.beat, k)
        while any(busy):
            time.sleep(0.01)
        pipe.send((n, round_.latencies, round_.unanswered, round_.skipped, round_.last_ok))


class _Round:
    """One rate's beats of a process of agents, and what came of them."""

    def __init__(self, agents: list, busy: list[bool]):
        self.agents, self.busy = agents, busy
        self.latencies: list[float] = []
        self.last_ok: dict[str, float] = {}
        self.unanswered = self.skipped = 0
        self.lock = threading.Lock()

    def beat(self, k: int) -> None:
        from voe.agent.client import Unreachable

        name, client = self.agents[k]
        sent, began = time.time(), time.perf_counter()
        try:
            client.call("POST", "/api/v1/agent/heartbeat", BODY)
            with self.lock:
                self.latencies.append(time.perf_counter() - began)
                self.last_ok[name] = sent
        except Unreachable:
            with self.lock:
                self.unanswered += 1
        finally:
            self.busy[k] = False


def postgres_cpu_seconds(pg: PrivatePostgres) -> float:
    """The server's CPU so far: the postmaster, its backends, and the
    backends that have exited (reaped by it)."""
    pid = int((pg.dir / "postmaster.pid").read_text().split()[0])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    reaped = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return cpu_seconds(pid) + reaped + sum(helpers_cpu_seconds(pid).values())


def known_beats(c: Cluster, n: int) -> dict[str, float]:
    """Each persona's newest beat as controller ``n`` knows it (wall
    clock), at most the time its answer took later than it was: an agent's
    beat before its newest is older by a whole round of the agents (10 s
    at 1,000 a second for 10,000), so a newest beat missing still shows."""
    status = c.http.get(f"{c.urls[n]}/api/v1/status", timeout=120).json()
    got = time.time()
    return {p["name"]: got - p["agent"]["last_heartbeat_age"] for p in status["personas"] if p.get("agent")}


def heartbeat_figures(c: Cluster, pg: PrivatePostgres, creds: list[tuple[str, str]], rates: list[float],
                      seconds: float, workers: int) -> None:
    agent_urls = [f"https://127.0.0.1:{p}" for p in c.agent_ports]
    spawn = multiprocessing.get_context("spawn")
    pipes, procs = [], []
    share = -(-len(creds) // workers)
    for w in range(workers):
        mine, theirs = spawn.Pipe()
        p = spawn.Process(target=beat_worker, args=(theirs, agent_urls, str(c.ca), creds[w * share:(w + 1) * share],
                                                    w * share), daemon=True)
        p.start()
        pipes.append(mine)
        procs.append(p)
    try:
        # every agent beats once first: its connection open, as in a datacenter running for a while
        warm_began = time.perf_counter()
        for m in pipes:
            m.send(("beat", WARM_RATE / workers, share / (WARM_RATE / workers)))
        for m in pipes:
            m.recv()
        warm = time.perf_counter() - warm_began
        print(f"  heartbeats: {len(creds)} agents over {len(c.urls)} controllers' agent services, "
              f"{workers} processes of agents (every agent's first beat and connection: {warm:.0f} s)")
        for rate in rates:
            controllers = [c.procs[n].pid for n in range(len(c.urls))]
            cpu0 = [cpu_seconds(p) for p in controllers]
            svc0 = [helpers_cpu_seconds(p).get("agent service", 0.0) for p in controllers]
            pg0 = postgres_cpu_seconds(pg)
            for m in pipes:
                m.send(("beat", rate / workers, seconds))
            results = [m.recv() for m in pipes]
            cpu = sum(cpu_seconds(p) for p in controllers) - sum(cpu0)
            svc = sum(helpers_cpu_seconds(p).get("agent service", 0.0) for p in controllers) - sum(svc0)
            pgcpu = postgres_cpu_seconds(pg) - pg0
            offered = sum(r[0] for r in results)
            latencies = [x for r in results for x in r[1]]
            unanswered, skipped = sum(r[2] for r in results), sum(r[3] for r in results)
            last_ok = {k: v for r in results for k, v in r[4].items()}
            answered = len(latencies)
            time.sleep(1.0)  # a relay row every 0.1 s: well past it
            missing = []
            for n in range(len(c.urls)):
                known = known_beats(c, n)
                # the status rounds a beat's age to 10 ms
                missing.append(sum(1 for name, sent in last_ok.items() if known.get(name, 0.0) < sent - 0.02))
            per = 1000 / max(1, answered)
            print(f"    offered {rate:g}/s: answered {answered / seconds:.0f}/s ({answered} of {offered}; "
                  f"{unanswered} unanswered, {skipped} not sent: the agent's last beat still out), "
                  f"latency {ms(latencies)}")
            print(f"      CPU per beat: controllers {cpu * per:.2f} ms, agent services {svc * per:.2f} ms, "
                  f"PostgreSQL {pgcpu * per:.2f} ms; all three: {(cpu + svc + pgcpu) / seconds:.2f} cores "
                  f"(10,000 beats/s would take {(cpu + svc + pgcpu) * per * 10:.1f} cores)")
            print(f"      newest answered beat of each of {len(last_ok)} agents not known to c0/c1/c2: "
                  + "/".join(str(m) for m in missing) + "   target 0")
    finally:
        for m in pipes:
            m.send(None)
        for p in procs:
            p.join(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--personas", type=int, default=10_000)
    ap.add_argument("--hosts", type=int, default=2_000)
    ap.add_argument("--rates", default="500,1000", help="total beats a second offered, one run each")
    ap.add_argument("--seconds", type=float, default=10.0, help="per rate")
    ap.add_argument("--workers", type=int, default=2, help="processes of agents")
    args = ap.parse_args()
    rng = random.Random(1)
    doc = datacenter(args.personas, args.hosts)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="voe-scale-") as tmp, \
            PrivatePostgres(Path(f"/tmp/voe-scale-pg-{os.getpid()}")) as pg:
        c = Cluster({}, Path(tmp), pg.url, controllers=3)
        print(f"scale: {args.personas} personas, {args.hosts} hosts, 3 controllers on PostgreSQL "
              f"({datetime.now():%Y-%m-%d %H:%M})")
        try:
            c.start_controller("--no-reconcile")
            inventory_figures(c, doc, rng)
            creds = live_agents(c, Path(tmp) / "data", pg.url, [p["name"] for p in doc["personas"]])
            heartbeat_figures(c, pg, creds, [float(r) for r in args.rates.split(",")], args.seconds, args.workers)
        finally:
            c.stop()
    print(f"  ({time.monotonic() - began:.0f} s in all)")


if __name__ == "__main__":
    main()
