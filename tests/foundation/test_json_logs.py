"""``--log-format json``: every line a process logs is one JSON object
naming its process, and the records of an API request carry the request's
id and its token's name, as the events that request caused do; on both
stores."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time

import httpx

from tests.foundation.served import voe_serve


def json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # a line that is not JSON fails here


def test_the_controller_logs_json_with_the_request_id_and_token_its_events_carry(tmp_path, store_url):
    with voe_serve(tmp_path, "--log-format", "json", database_url=store_url) as s:
        token = (s["data"] / "admin-token").read_text().strip()
        api = httpx.Client(base_url=s["url"] + "/api/v1", verify=ssl.create_default_context(cafile=s["ca"]),
                           headers={"Authorization": f"Bearer {token}"})
        r = api.post("/tokens", json={"name": "prometheus", "role": "viewer"}, headers={"X-Request-ID": "change-81"})
        assert r.status_code == 201 and r.headers["X-Request-ID"] == "change-81"
        events = api.get("/events/log", params={"kind": "audit"}).json()
        deadline = time.monotonic() + 10
        while not any(rec.get("request_id") == "change-81" for rec in json_lines(s["log"].read_text())):
            assert time.monotonic() < deadline, s["log"].read_text()
            time.sleep(0.1)
        records = json_lines(s["log"].read_text())

    created = next(e for e in events if "prometheus" in e["message"])
    assert created["data"]["request_id"] == "change-81" and created["data"]["by"] == "admin"
    assert not any(token in json.dumps(e) for e in events)  # a token's name, never its secret
    assert {rec["process"] for rec in records} >= {"controller"}
    assert all({"time", "level", "logger", "message", "process"} <= set(rec) for rec in records)
    access = next(rec for rec in records if rec.get("request_id") == "change-81")
    assert (access["logger"], access["by"], access["status"], access["method"]) == \
        ("voe.api.access", "admin", 201, "POST")


def test_the_agent_logs_json_when_asked(tmp_path):
    agent = subprocess.Popen([sys.executable, "-m", "voe.agent", "--log-format", "json", "--root", str(tmp_path),
                              "--cmdline", "voe.controller=https://127.0.0.1:9 voe.persona=web-1 voe.generation=1 "
                                           "voe.token=voe_x"], stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(agent.stderr.readline())
        second = json.loads(agent.stderr.readline())
    finally:
        agent.kill()
        agent.wait()
    assert (first["process"], first["level"], first["message"]) == ("agent", "INFO", "web-1 generation 1 starting")
    assert (second["process"], second["level"]) == ("agent", "WARNING")
    assert "controller unreachable" in second["message"]
