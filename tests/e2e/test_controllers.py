"""Three controllers on one PostgreSQL, each a `voe serve` of its own, and
the lab: one leads; killed, paused past its lease or cut from its
database, another takes over, no persona is fenced or started again
because of it, and the faults that follow are handled by the new leader."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from harness import Cluster, PrivatePostgres, free_port, load, relocate
from tests.conftest import new_store

RUNNING = ("oracle", "bea-1", "web-1")
LEASE = 2.0


def start(cluster: Cluster, *names: str) -> dict[str, dict]:
    for n in names:
        r = cluster.http.post(f"{cluster.urls[cluster.leader()]}/api/v1/personas/{n}/start", json={})
        assert r.status_code == 202, r.text
    return {n: cluster.wait(n, lambda s: s["state"] == "running", 60) for n in names}


def unchanged(cluster: Cluster, before: dict[str, dict], settle: float) -> None:
    """Each persona still runs its incarnation of ``before``, ``settle``
    seconds on (longer than a silence takes to become a fence), with no
    suspicion on record."""
    time.sleep(settle)
    for name, was in before.items():
        now = cluster.status(name)
        assert (now["state"], now["generation"]) == ("running", was["generation"]), (name, now)
    log = cluster.get("/api/v1/events/log", params={"kind": "transition", "limit": 500}).json()
    assert not [e["message"] for e in log if "→ suspect" in e["message"] or "→ fencing" in e["message"]]


def no_double_runs(cluster: Cluster) -> None:
    truth = cluster.truth()
    assert truth["violations"] == [], truth["violations"]


def takeover(cluster: Cluster, old: int) -> tuple[int, float]:
    """The new leader and how long it took, from now."""
    began = time.monotonic()
    while True:
        try:
            leaders = [c for c in cluster.controllers() if c["leader"] and c["name"] != f"c{old}"]
        except RuntimeError:
            leaders = []
        if leaders:
            return int(leaders[0]["name"][1:]), time.monotonic() - began
        assert time.monotonic() - began < LEASE + 10, "no controller took over"
        time.sleep(0.02)


@contextmanager
def cluster_on(tmp_path: Path, url: str) -> Iterator[Cluster]:
    c = Cluster(relocate(load()), tmp_path, url, controllers=3, env={"VOE_LEASE": str(LEASE)})
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def cluster(tmp_path):
    with new_store("postgresql") as url, cluster_on(tmp_path, url) as c:
        yield c


def test_one_controller_leads_and_every_one_serves(cluster):
    listed = cluster.controllers()
    assert sorted(c["name"] for c in listed) == ["c0", "c1", "c2"]
    assert sum(c["leader"] for c in listed) == 1
    for url in cluster.urls:  # the API and the console, from each
        assert cluster.http.get(f"{url}/api/v1/personas").status_code == 200
        assert cluster.http.get(f"{url}/").status_code == 200
    follower = next(i for i in range(3) if i != cluster.leader())
    r = cluster.http.post(f"{cluster.urls[follower]}/api/v1/personas/oracle/start", json={})
    assert r.status_code == 202  # recorded by a follower, acted on by the leader
    cluster.wait("oracle", lambda s: s["state"] == "running", 60)
    out = subprocess.run([sys.executable, "-m", "voe.cli.main", "controller", "list", "--json"], env={
        **cluster.env, "VOE_URL": cluster.urls[follower], "VOE_CA": str(cluster.ca)},
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert '"leader": true' in out.stdout


def test_the_leader_killed_another_takes_over_and_handles_the_next_fault(cluster):
    before = start(cluster, *RUNNING)
    old = cluster.leader()
    cluster.kill(old)
    new, took = takeover(cluster, old)
    print(f"takeover after SIGKILL: {took:.2f} s")
    unchanged(cluster, before, settle=3.0)
    host = before["oracle"]["machine"]["host"]
    cluster.fault(host, "hang")
    after = cluster.wait("oracle", lambda s: s["generation"] > before["oracle"]["generation"]
                         and s["state"] == "running", 60)
    assert after["machine"]["host"] != host
    assert cluster.leader() == new
    no_double_runs(cluster)


def test_a_paused_leader_wakes_deposed_and_follows(cluster):
    before = start(cluster, *RUNNING)
    old = cluster.leader()
    term = next(c["term"] for c in cluster.controllers() if c["leader"])
    cluster.pause(old, True)
    new, _ = takeover(cluster, old)
    time.sleep(0.5)
    cluster.pause(old, False)
    log = cluster.workdir / f"controller-{old}.log"
    deadline = time.monotonic() + 30
    while f"no longer leads term {term}" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    cluster._until_answers(old)  # back, as a follower
    listed = {c["name"]: c for c in cluster.controllers()}
    assert not listed[f"c{old}"]["leader"] and listed[f"c{new}"]["leader"]
    assert listed[f"c{new}"]["term"] > term
    unchanged(cluster, before, settle=2.0)
    no_double_runs(cluster)


def test_an_agent_keeps_its_persona_while_each_controller_in_turn_is_killed(cluster):
    before = start(cluster, "bea-1")
    for n in range(3):
        cluster.kill(n)
        time.sleep(LEASE + 1.0)
        cluster.start_controller(i=n)
    unchanged(cluster, before, settle=2.0)
    no_double_runs(cluster)


def test_an_agent_learns_of_a_controller_started_after_it_booted(cluster):
    """A persona booted while one controller was down is named only the two
    serving; once the third is back, the answers to its beats name it too,
    so when the first two are killed the agent beats to the third, and the
    persona keeps its incarnation."""
    cluster.kill(2)
    time.sleep(3 * LEASE + 1.0)  # no longer named to agents (see voe.server.SERVING)
    before = start(cluster, "bea-1")
    cluster.start_controller(i=2)
    time.sleep(2.0)  # a beat's answer or two
    for n in (0, 1):
        cluster.kill(n)
    assert takeover(cluster, 0)[0] == 2
    unchanged(cluster, before, settle=3.0)
    no_double_runs(cluster)


def test_a_partitioned_server_reaches_no_controller_it_has_learned_of(cluster):
    """Cut off by a partition, a server's agent reaches none of the
    controllers, the ones its answers named included: its persona is
    fenced and started elsewhere, once."""
    before = start(cluster, "oracle")
    host = before["oracle"]["machine"]["host"]
    time.sleep(1.0)  # beats answered, naming every controller
    cluster.fault(host, "partition")
    after = cluster.wait("oracle", lambda s: s["generation"] > before["oracle"]["generation"]
                         and s["state"] == "running", 60)
    assert after["machine"]["host"] != host
    no_double_runs(cluster)


def test_paused_followers_fence_none_of_their_agents_personas(cluster):
    """Agents beating to a paused follower (SIGSTOP) are answered for a
    second more and their beats never relayed; then they beat to another
    controller. The leader, seeing that follower's relay go quiet, waits
    for them: nobody is fenced."""
    before = start(cluster, *RUNNING)
    followers = [n for n in range(3) if n != cluster.leader()]
    for n in followers:
        cluster.pause(n, True)
    time.sleep(3.0)
    for n in followers:
        cluster.pause(n, False)
    unchanged(cluster, before, settle=2.0)
    no_double_runs(cluster)


# --- PostgreSQL restarted -----------------------------------------------------


@pytest.fixture
def private_postgres():
    try:
        with PrivatePostgres(Path(f"/tmp/voe-pg-{os.getpid()}-{free_port()}")) as pg:
            yield pg
    except FileNotFoundError as e:
        pytest.skip(str(e))


def test_postgresql_restarted_mid_failover_completes_it_once(tmp_path, private_postgres):
    pg = private_postgres
    with cluster_on(tmp_path, pg.url) as cluster:
        before = start(cluster, *RUNNING)
        host = before["oracle"]["machine"]["host"]
        cluster.fault(host, "hang")
        cluster.wait("oracle", lambda s: s["state"] in ("suspect", "fencing", "fenced", "placing",
                                                        "powering-on", "booting"), 30)
        pg.stop("fast")  # every connection dropped, mid-failover
        time.sleep(1.0)
        pg.start()
        after = cluster.wait("oracle", lambda s: s["generation"] > before["oracle"]["generation"]
                             and s["state"] == "running", 90)
        assert after["machine"]["host"] != host
        assert after["generation"] == before["oracle"]["generation"] + 1, "the failover ran twice"
        for name in ("bea-1", "web-1"):
            assert cluster.wait(name, lambda s: s["state"] == "running", 60)["generation"] == \
                before[name]["generation"]
        assert sum(c["leader"] for c in cluster.controllers()) == 1
        assert all(p.poll() is None for p in cluster.procs), "a controller exited"
        no_double_runs(cluster)
