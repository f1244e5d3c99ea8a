"""The agent service (``voe serve --agent-port``): booting machines and
agents get their scripts, configuration and answers from it, read from the
store as the controller's API reads them; each beat reaches the
controller's memory, where silence is judged; the pace the controller sets
reaches the agents; a service that dies is started again on the same port;
and one whose controller is killed does not outlive it."""

from __future__ import annotations

import os
import signal
import time
import urllib.request

import pytest

from harness import free_port, load
from tests.conftest import child_ends_with_its_killed_parent
from voe.agent.client import Controller
from voe.api.agent_service import AgentService
from voe.controller.pacing import BeatPace
from voe.controller.timing import Timing
from voe.domain.inventory import parse

MAC = "02:56:4f:00:00:07"
BEAT = {"generation": 1, "ready": True, "stopping": False, "uptime": 1.0, "addresses": {"front": "10.0.1.1/24"},
        "detail": "network configured", "wwpn": None}


def eventually(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("not within the time allowed")
        time.sleep(0.05)


@pytest.fixture
def service(services, store_url):
    """web-1 running as generation 1 with its boot script and credential,
    and an agent service over the same store; returns it, the pace it
    follows, and web-1's agent credential."""
    services.inventory.write(lambda _: parse(load()))
    services.runtime.begin_incarnation("web-1", "vm", "dl360-1", "web-1", MAC, "test")
    services.runtime.register_boot(MAC, "web-1", 1, "#!ipxe\necho web-1 generation 1\n")
    token = services.tokens.replace("agent-web-1-1", "agent", persona="web-1")
    pace = BeatPace(Timing(heartbeat_interval=0.5))
    s = AgentService(services.runtime, pace, services.data_dir, store_url, "127.0.0.1", free_port())
    s.start()
    yield s, pace, token
    s.close()


def url_of(s: AgentService) -> str:
    host, port = s.sock.getsockname()[:2]
    return f"http://{host}:{port}"


def test_an_agent_is_served_from_the_store_and_its_beats_reach_the_controller(service, services):
    s, pace, token = service
    agent = Controller(url_of(s), token)
    config = eventually(lambda: agent.call("GET", "/api/v1/agent/config"))
    assert (config["persona"], config["generation"], config["machine"]["host"]) == ("web-1", 1, "dl360-1")
    with urllib.request.urlopen(f"{url_of(s)}/boot/ipxe/{MAC}", timeout=5) as r:
        assert b"web-1 generation 1" in r.read()

    answer = agent.call("POST", "/api/v1/agent/heartbeat", BEAT)
    assert answer["action"] == "continue" and answer["interval"] == 0.5
    beat = eventually(lambda: services.runtime.beats.of("web-1"))
    assert (beat["generation"], beat["ready"], beat["told"], beat["report"]["addresses"]) == \
        (1, True, 0.5, {"front": "10.0.1.1/24"})

    pace.follow(700)  # seven hundred agents beating: the controller slows them to 7 s
    assert eventually(lambda: agent.call("POST", "/api/v1/agent/heartbeat", BEAT)["interval"] == 7.0)
    assert eventually(lambda: services.runtime.beats.of("web-1")["told"] == 7.0)

    services.runtime.end_incarnation("web-1", 1, "test: fenced")
    assert agent.call("POST", "/api/v1/agent/heartbeat", BEAT)["action"] == "stale"  # at once, from the store


def test_a_beat_the_controller_cannot_record_does_not_stop_the_next(service, services, monkeypatch):
    """Were the controller's reader of beats to end on one bad beat, every
    persona would fall silent to the reconciler at once, and be failed over."""
    s, _, token = service
    record, calls = services.runtime.beats.record, []

    def first_fails(*args, **kw):
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("a bug in recording one beat")
        return record(*args, **kw)

    monkeypatch.setattr(services.runtime.beats, "record", first_fails)
    agent = Controller(url_of(s), token)
    eventually(lambda: agent.call("POST", "/api/v1/agent/heartbeat", BEAT))
    eventually(lambda: calls)
    agent.call("POST", "/api/v1/agent/heartbeat", {**BEAT, "detail": "the next beat"})
    assert eventually(lambda: (services.runtime.beats.of("web-1") or {}).get("report", {}).get("detail")
                      == "the next beat")


def test_a_service_that_dies_is_started_again_on_the_same_port(service, services):
    s, _, token = service
    agent = Controller(url_of(s), token)
    eventually(lambda: agent.call("POST", "/api/v1/agent/heartbeat", BEAT))
    first = s.pid
    os.kill(first, signal.SIGKILL)
    again = {**BEAT, "detail": "after the service came back"}
    eventually(lambda: agent.call("POST", "/api/v1/agent/heartbeat", again))
    assert s.pid != first
    assert eventually(lambda: services.runtime.beats.of("web-1")["report"]["detail"] == again["detail"])


def test_the_agent_service_ends_with_a_controller_killed_outright(tmp_path):
    assert child_ends_with_its_killed_parent(
        "import time\n"
        "from voe.api.agent_service import AgentService\n"
        "from voe.controller.pacing import BeatPace\n"
        "from voe.controller.services import Services\n"
        "from voe.controller.timing import Timing\n"
        f"services = Services.open({str(tmp_path / 'data')!r})\n"
        f"s = AgentService(services.runtime, BeatPace(Timing()), services.data_dir, None, '127.0.0.1', {free_port()})\n"
        "s.start(); print(s.pid, flush=True); time.sleep(60)"), "the agent service outlived its controller"
