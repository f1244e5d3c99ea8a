"""``voe events``: the event log from the command line, filtered, since a
time, as JSON lines, and followed live, against a controller on a TCP port."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from voe.cli.event_cmds import parse_since
from voe.cli.main import app


@pytest.fixture
def voe(live_controller, monkeypatch):
    url, token = live_controller
    monkeypatch.setenv("VOE_URL", url)
    monkeypatch.setenv("VOE_TOKEN", token)
    monkeypatch.setenv("COLUMNS", "240")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["events", *args], catch_exceptions=False)


@pytest.fixture
def log(services):
    services.events.append("info", "transition", "oracle placing -> placed", persona="oracle")
    services.events.append("warning", "suspect", "web-1 missed 4 heartbeats", persona="web-1", host="dl360-1")
    services.events.append("error", "fence", "dl360-1 fenced: BMC power off confirmed", host="dl360-1")
    return services.events


def test_the_newest_events_oldest_first(voe, log):
    r = voe("--limit", "2")
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 2 and "missed 4 heartbeats" in lines[0] and "fenced" in lines[1]


def test_filters_by_persona_host_and_severity(voe, log):
    assert "placing -> placed" in voe("--persona", "oracle").output
    assert "web-1" not in voe("--persona", "oracle").output
    by_host = voe("--host", "dl360-1").output.strip().splitlines()
    assert len(by_host) == 2
    errors = voe("--severity", "error").output.strip().splitlines()
    assert len(errors) == 1 and "fenced" in errors[0]


def test_since_an_age_or_a_time(voe, log):
    assert len(voe("--since", "10m").output.strip().splitlines()) == 3
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert voe("--since", future).output.strip() == ""


def test_json_lines_carry_every_field(voe, log):
    rows = [json.loads(x) for x in voe("--json").output.strip().splitlines()]
    assert [r["kind"] for r in rows] == ["transition", "suspect", "fence"]
    assert rows[1]["persona"] == "web-1" and rows[1]["host"] == "dl360-1"


@pytest.mark.parametrize("args, hint", [(["--since", "yesterday"], "--since"), (["--severity", "loud"], "--severity")])
def test_bad_options_name_the_option_and_the_fix(voe, args, hint):
    r = CliRunner().invoke(app, ["events", *args])
    assert r.exit_code == 2 and hint in r.output


def test_parse_since_reads_ages_and_zoneless_times_as_utc():
    now = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    assert parse_since("90s", now) == now - timedelta(seconds=90)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("2026-12-04T08:00") == datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


def test_follow_prints_events_as_they_come(live_controller, log):
    url, token = live_controller
    env = {**os.environ, "VOE_URL": url, "VOE_TOKEN": token}
    log.append("info", "transition", "bea-1 placing -> booting", persona="bea-1")
    follower = subprocess.Popen([sys.executable, "-m", "voe.cli.main", "events", "--follow", "--json",
                                 "--persona", "bea-1"], env=env, stdout=subprocess.PIPE, text=True)

    def next_event() -> dict:
        ready, _, _ = select.select([follower.stdout], [], [], 30)
        assert ready, "voe events --follow printed nothing in 30 s"
        return json.loads(follower.stdout.readline())

    try:
        assert next_event()["message"] == "bea-1 placing -> booting"  # the log so far has been read
        log.append("info", "transition", "oracle running", persona="oracle")  # filtered out
        log.append("info", "transition", "bea-1 booting -> running", persona="bea-1")
        assert next_event()["message"] == "bea-1 booting -> running"  # and this one came by following
    finally:
        follower.terminate()
        follower.wait(10)
