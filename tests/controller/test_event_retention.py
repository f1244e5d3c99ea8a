"""The event log keeps what its retention says, on both stores: events older
than the age or beyond the count are pruned in the background, newest
kept, audit events by their own age; a bad setting names its variable."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from harness import free_port
from voe.controller.retention import EventPruner, Retention, parse_bounds
from voe.store import schema
from voe.store.events import EventQuery
from voe.store.time import now


def add(services, age: timedelta, message: str, kind: str = "transition") -> None:
    with services.engine.begin() as c:
        c.execute(insert(schema.events).values(at=now() - age, severity="info", kind=kind, message=message))


def messages(services) -> list[str]:
    return [e["message"] for e in services.events.query(EventQuery(limit=1000)) if e["kind"] != "retention"]


def pruner(services, **retention) -> EventPruner:
    reports = []
    p = EventPruner(services.events, Retention(**retention), lambda *a, **k: reports.append(a))
    p.reports = reports
    return p


def test_events_older_than_the_age_go_and_the_rest_stay(services):
    for i in range(5):
        add(services, timedelta(days=40), f"old {i}")
    for i in range(3):
        add(services, timedelta(days=1), f"new {i}")
    p = pruner(services, max_age=timedelta(days=30), max_count=None)
    assert p.prune() == 5
    assert messages(services) == ["new 0", "new 1", "new 2"]
    assert p.reports and "pruned 5 events" in p.reports[0][2]
    assert p.prune() == 0  # nothing more is due


def test_beyond_the_count_the_oldest_go(services):
    for i in range(10):
        add(services, timedelta(minutes=10 - i), f"e{i}")
    assert pruner(services, max_age=None, max_count=4, batch=3).prune() == 6
    assert messages(services) == ["e6", "e7", "e8", "e9"]


def test_audit_events_follow_their_own_age_and_do_not_hold_the_others_back(services):
    add(services, timedelta(days=400), "audit, too old", kind="audit")
    add(services, timedelta(days=100), "audit, kept", kind="audit")
    add(services, timedelta(days=90), "event, old")
    add(services, timedelta(hours=1), "event, new")
    assert pruner(services, max_age=timedelta(days=30), max_count=None, audit_age=timedelta(days=365)).prune() == 2
    assert messages(services) == ["audit, kept", "event, new"]


def test_a_large_log_is_pruned_in_batches_while_writers_go_on(services):
    with services.engine.begin() as c:
        c.execute(insert(schema.events), [dict(at=now() - timedelta(days=60), severity="info", kind="transition",
                                               message=f"old {i}") for i in range(5000)])
    p = pruner(services, max_age=timedelta(days=30), max_count=None, batch=500, pause=0.001)
    writes = []

    def writer():
        for i in range(50):
            writes.append(services.events.append("info", "transition", f"during {i}"))

    t = threading.Thread(target=writer)
    t.start()
    assert p.prune(threading.Event()) == 5000
    t.join(30)
    assert len(writes) == 50
    assert sorted(messages(services)) == sorted(f"during {i}" for i in range(50))


def test_the_pruner_runs_in_the_background_until_stopped(services):
    for i in range(20):
        add(services, timedelta(days=60), f"old {i}")
    stop = threading.Event()
    p = pruner(services, max_age=timedelta(days=30), interval=0.05)
    p.start(stop)
    deadline = now() + timedelta(seconds=10)
    while messages(services) and now() < deadline:
        stop.wait(0.05)
    stop.set()
    p._thread.join(5)
    assert messages(services) == [] and not p._thread.is_alive()


def test_off_keeps_everything_and_starts_no_thread(services, monkeypatch):
    monkeypatch.setenv("VOE_EVENT_RETENTION", "off")
    monkeypatch.setenv("VOE_AUDIT_RETENTION", "off")
    p = EventPruner(services.events, Retention.from_env(), lambda *a, **k: None)
    p.start(threading.Event())
    assert p._thread is None
    add(services, timedelta(days=4000), "ancient")
    assert p.prune() == 0
    with services.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(schema.events)).scalar() == 1


@pytest.mark.parametrize("text, bounds", [("30d", (timedelta(days=30), None)), ("500000", (None, 500000)),
                                          ("12h,1000", (timedelta(hours=12), 1000)), ("off", (None, None))])
def test_bounds_read_as_an_operator_writes_them(text, bounds):
    assert parse_bounds(text, "VOE_EVENT_RETENTION") == bounds


@pytest.mark.parametrize("variable, raw", [("VOE_EVENT_RETENTION", "30 days"), ("VOE_EVENT_RETENTION", "0"),
                                           ("VOE_AUDIT_RETENTION", "1000")])
def test_a_bad_setting_names_its_variable_and_the_fix(monkeypatch, variable, raw):
    monkeypatch.setenv(variable, raw)
    with pytest.raises(ValueError, match=f"{variable}=.*set it like {variable}="):
        Retention.from_env()


def test_voe_serve_with_a_bad_retention_stops_naming_it(tmp_path):
    env = {**os.environ, "VOE_EVENT_RETENTION": "forever"}
    r = subprocess.run([sys.executable, "-m", "voe.cli.main", "--data-dir", str(tmp_path), "serve",
                        "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "VOE_EVENT_RETENTION='forever'" in r.stderr and "Traceback" not in r.stderr
