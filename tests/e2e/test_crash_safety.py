"""Crash safety: kill the controller with SIGKILL in the middle of a
failover, start it again on the same store; it resumes from what it
recorded, and nothing runs twice."""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from harness import Stack, load, relocate


@pytest.fixture
def procs(tmp_path):
    s = Stack(relocate(load()), tmp_path).start()
    yield s
    s.stop()


@pytest.mark.parametrize("delay", [0.0, 0.6, 1.2, 2.0])
def test_sigkill_mid_failover_resumes_without_a_double_run(procs, delay):
    s = procs
    for p in ("oracle", "web-1"):
        assert s.http.post(f"/api/v1/personas/{p}/start", json={}).status_code == 202
    before = {p: s.wait(p, lambda st: st["state"] == "running") for p in ("oracle", "web-1")}
    s.fault(before["oracle"]["machine"]["host"], "hang")
    s.fault("dl360-1", "os-crash")  # web-1's hypervisor host
    time.sleep(delay + random.random() * 0.2)
    s.kill_controller()
    time.sleep(0.5)
    s.start_controller()
    for p in ("oracle", "web-1"):
        after = s.wait(p, lambda st, p=p: st["generation"] > before[p]["generation"] and st["state"] == "running", 60)
        assert after["machine"]["host"] != before[p]["machine"]["host"]
    truth = s.truth()
    assert truth["violations"] == [], truth["violations"]
    live = [i for i in truth["incarnations"] if i["state"] != "dead" and not i["isolated"]]
    assert sorted(i["persona"] for i in live) == ["oracle", "web-1"]
