"""A persona's credential reads its own configuration and nothing else."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import EXAMPLE
from voe.api.app import create_app
from voe.cli.yamlfile import DatacenterFile


def test_an_agent_token_cannot_read_another_persona_or_the_inventory(api, services):
    assert api.post("/api/v1/apply", json={"document": DatacenterFile(EXAMPLE).data()}).status_code == 200
    services.runtime.begin_incarnation("web-1", "vm", "dl360-1", "web-1", "02:56:4f:00:00:07", "test")
    token = services.tokens.replace("agent-web-1", "agent", persona="web-1")
    with TestClient(create_app(services), headers={"Authorization": f"Bearer {token}"}) as agent:
        own = agent.get("/api/v1/agent/config")
        assert own.status_code == 200 and own.json()["persona"] == "web-1"
        assert [i["network"] for i in own.json()["interfaces"]] == ["front", "back"]
        other = agent.get("/api/v1/agent/config", params={"persona": "oracle"})
        assert other.status_code == 403
        assert other.json()["detail"] == "this credential belongs to web-1; it cannot read oracle"
        assert agent.get("/api/v1/personas/oracle").status_code == 403
        assert agent.get("/api/v1/hosts").status_code == 403
    # an admin token is not an agent credential either
    assert api.get("/api/v1/agent/config").status_code == 403


def test_a_heartbeat_of_an_old_generation_is_told_stale(api, services):
    api.post("/api/v1/apply", json={"document": DatacenterFile(EXAMPLE).data()})
    services.runtime.begin_incarnation("lb", "vm", "dl360-1", "lb", "02:56:4f:00:00:0d", "test")
    token = services.tokens.replace("agent-lb", "agent", persona="lb")
    with TestClient(create_app(services), headers={"Authorization": f"Bearer {token}"}) as agent:
        assert agent.post("/api/v1/agent/heartbeat", json={"generation": 1, "ready": True}).json()["action"] == "continue"
        assert agent.post("/api/v1/agent/heartbeat", json={"generation": 0 + 2, "ready": True}).json()["action"] == "stale"


def test_a_beat_is_told_stop_while_its_persona_stops_and_stale_once_its_incarnation_ended(api, services):
    """The answer follows the persona's newest incarnation and its state,
    read together (one read per beat)."""
    from voe.domain.lifecycle import Event, State

    api.post("/api/v1/apply", json={"document": DatacenterFile(EXAMPLE).data()})
    rt = services.runtime
    rt.transition("lb", State.STOPPED, Event.START)
    generation = rt.begin_incarnation("lb", "vm", "dl360-1", "lb", "02:56:4f:00:00:0d", "test")
    rt.transition("lb", State.PLACING, Event.PLACED)
    token = services.tokens.replace("agent-lb", "agent", persona="lb")
    beat = {"generation": generation, "ready": True}
    with TestClient(create_app(services), headers={"Authorization": f"Bearer {token}"}) as agent:
        assert agent.post("/api/v1/agent/heartbeat", json=beat).json()["action"] == "continue"
        rt.transition("lb", State.POWERING_ON, Event.STOP)
        assert agent.post("/api/v1/agent/heartbeat", json=beat).json()["action"] == "stop"
        rt.end_incarnation("lb", generation, "test: powered off")
        assert agent.post("/api/v1/agent/heartbeat", json=beat).json()["action"] == "stale"
    # a persona never placed has no generation an agent could hold
    stranger = services.tokens.replace("agent-oracle", "agent", persona="oracle")
    with TestClient(create_app(services), headers={"Authorization": f"Bearer {stranger}"}) as agent:
        assert agent.post("/api/v1/agent/heartbeat", json={"generation": 1, "ready": True}).json()["action"] == "stale"
