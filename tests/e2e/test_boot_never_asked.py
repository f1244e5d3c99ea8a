"""A newcomer's lab that boots its machines from the wrong controller URL:
the machines power on and fetch nothing. The start fails within the short
boot-script timeout, saying the machine never asked for its script, and
after a second server does the same the persona is failed, blaming the
boot network, instead of being tried on a third server."""

from __future__ import annotations

import time

from tests.conftest import free_port
from tests.e2e.conftest import running_stack
from voe.controller.timing import Timing


def test_machines_booting_from_a_wrong_url_fail_fast_and_the_persona_is_not_tried_on_a_third_server(tmp_path):
    timing = Timing(boot_script_timeout=2.0)
    nobody = f"http://127.0.0.1:{free_port()}"  # no controller answers there
    with running_stack(tmp_path, timing=timing, boot_from=nobody) as s:
        began = time.monotonic()
        assert s.http.post("/api/v1/personas/oracle/start", json={}).status_code == 202
        failed = s.wait("oracle", lambda st: st["state"] == "failed", timeout=60)
        took = time.monotonic() - began
        status = s.http.get("/api/v1/personas/oracle/status").json()

    assert took < timing.boot_timeout  # not the whole boot timeout, even once
    assert "boot network" in failed["reason"] and "never asked for its boot script" in failed["reason"]
    incarnations = status["incarnations"]
    assert len(incarnations) == 2, incarnations  # no third server
    assert len({i["host"] for i in incarnations}) == 2
    for i in incarnations:
        assert f"{i['host']} powered on but never asked for its boot script" in i["failure"]
        assert i["ended_at"] is not None  # fenced: evidence before the next server
    assert status["boot"]["stages"] == []  # the last incarnation's machine reached no stage


def test_a_persona_that_boots_records_its_stages(stack):
    assert stack.http.post("/api/v1/personas/oracle/start", json={}).status_code == 202
    stack.wait("oracle", lambda st: st["state"] == "running")
    boot = stack.status("oracle")["boot"]
    assert [b["stage"] for b in boot["stages"]] == ["script", "config"]
    events = stack.http.get("/api/v1/events/log", params={"persona": "oracle", "kind": "boot"}).json()
    assert any("its machine fetched its boot script" in e["message"] for e in events)
