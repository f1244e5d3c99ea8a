"""A persona's credential reads its own configuration and nothing else."""

from __future__ import annotations

from fastapi.testclient import TestClient

from voe.api.app import create_app
from tests.conftest import EXAMPLE
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
