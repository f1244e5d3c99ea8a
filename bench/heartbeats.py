"""Heartbeat cost: what one agent's beat costs the controller. N agents,
each with its own credential and a live incarnation, beat through the
agent's own HTTP client at a fixed total rate, to the controller's agent
service (``--agent-port``; ``--main-port``: to the controller's own API);
the controller runs without its reconciler (``--no-reconcile``), so every
CPU second it spends is spent on beats. Prints, per offered rate, the rate
answered, the CPU time per beat of the controller and of its agent service,
and the beats' latency (median, p99, and how many the agent's 2-s timeout
gave up on).

At 1,000 personas, beats are most of a controller's requests: pacing keeps
them within ``Timing.max_heartbeats_per_second`` (100), and whatever each
costs is taken from the starts and failovers the controller is there for.

    .venv/bin/python bench/heartbeats.py [--agents 1000] [--rates 100,200,400] [--seconds 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from harness import Stack, cpu_seconds, helpers_cpu_seconds
from voe.agent.client import Controller, Unreachable
from voe.controller.services import Services


def agents(data: Path, n: int) -> list[tuple[str, str]]:
    """``n`` personas with a live incarnation and an agent credential each."""
    services = Services.open(data)
    services.ensure_admin_token()
    try:
        out = []
        for i in range(n):
            name = f"p{i:04d}"
            services.runtime.begin_incarnation(name, "vm", "hv", name, f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}", "bench")
            out.append((name, services.tokens.replace(f"agent-{name}-1", "agent", persona=name)))
        return out
    finally:
        services.close()


def beat_at(url: str, ca: Path, creds: list[tuple[str, str]], rate: float,
            seconds: float) -> tuple[int, list[float], int]:
    """Beats at ``rate`` a second in all, spread over the agents in turn;
    returns (answered, latencies, unanswered)."""
    latencies: list[float] = []
    unanswered = 0
    lock = threading.Lock()
    clients = [Controller(url, token, str(ca)) for _, token in creds]
    body = {"generation": 1, "ready": True, "stopping": False, "uptime": 1.0,
            "addresses": {"front": "10.1.0.1/16"}, "detail": "", "wwpn": None}

    def one(client: Controller) -> None:
        nonlocal unanswered
        began = time.monotonic()
        try:
            client.call("POST", "/api/v1/agent/heartbeat", body)
        except Unreachable:
            with lock:
                unanswered += 1
            return
        with lock:
            latencies.append(time.monotonic() - began)

    threads: list[threading.Thread] = []
    start = time.monotonic()
    k = 0
    while (due := start + k / rate) < start + seconds:
        time.sleep(max(0.0, due - time.monotonic()))
        t = threading.Thread(target=one, args=(clients[k % len(clients)],), daemon=True)
        t.start()
        threads.append(t)
        k += 1
    for t in threads:
        t.join()
    return len(latencies), latencies, unanswered


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--rates", default="100,200,400", help="total beats a second offered, one run each")
    ap.add_argument("--seconds", type=float, default=10.0, help="per rate")
    ap.add_argument("--main-port", action="store_true", help="beat to the controller's own API, not its agent service")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="voe-beats-") as tmp:
        stack = Stack({}, Path(tmp), agent_service=not args.main_port)
        creds = agents(Path(tmp) / "data", args.agents)
        try:
            stack.start_controller("--no-reconcile")
            ctl, url = stack.controller, stack.agents_url
            # every agent beats once first: its connection open and its credential
            # known, as in a datacenter running for a while (a first beat costs more)
            beat_at(url, stack.ca, creds, 200, len(creds) / 200)
            print(f"heartbeats: {args.agents} agents, the agent's own HTTP client, to the controller's "
                  + ("own API" if args.main_port else "agent service") + " (no reconciler)")
            for rate in (float(r) for r in args.rates.split(",")):
                cpu0, service0 = cpu_seconds(ctl.pid), helpers_cpu_seconds(ctl.pid).get("agent service", 0.0)
                answered, latencies, unanswered = beat_at(url, stack.ca, creds, rate, args.seconds)
                cpu = cpu_seconds(ctl.pid) - cpu0
                service = helpers_cpu_seconds(ctl.pid).get("agent service", 0.0) - service0
                latencies.sort()
                p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan")
                print(f"  offered {rate:g}/s: answered {answered / args.seconds:.0f}/s, "
                      f"controller CPU {cpu / max(1, answered) * 1000:.2f} ms per beat "
                      f"({cpu / args.seconds * 100:.0f}% of a core), "
                      + (f"agent service {service / max(1, answered) * 1000:.2f} ms, " if not args.main_port else "")
                      + f"latency median {statistics.median(latencies) * 1000 if latencies else float('nan'):.1f} ms, "
                      f"p99 {p99 * 1000:.1f} ms, {unanswered} unanswered")
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
