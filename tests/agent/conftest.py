"""web-1 of the sample datacenter running as generation 1, its agent
service over HTTPS, and the bootstrap tokens its boots carry."""

from __future__ import annotations

import pytest

from harness import free_port, load
from voe.api.agent_service import AgentService
from voe.controller.pacing import BeatPace
from voe.controller.timing import Timing
from voe.domain.inventory import parse
from voe.tls import TlsFiles, default_names, ensure

MAC = "02:56:4f:00:00:07"


@pytest.fixture
def web_agent_service(services, store_url) -> tuple[AgentService, TlsFiles]:
    """web-1 running as generation 1, and an agent service over HTTPS."""
    services.inventory.write(lambda _: parse(load()))
    services.runtime.begin_incarnation("web-1", "vm", "dl360-1", "web-1", MAC, "test")
    tls = ensure(services.data_dir, default_names("127.0.0.1"))
    s = AgentService(services.runtime, BeatPace(Timing(heartbeat_interval=0.2)), services.data_dir, store_url,
                     "127.0.0.1", free_port(), tls)
    s.start()
    assert s.wait_until_serving()
    yield s, tls
    s.close()


def bootstrap(services, generation: int = 1, valid_for: float = 60.0) -> str:
    """A one-use token for web-1's boot as ``generation``."""
    with services.engine.begin() as c:
        return services.tokens.create_bootstrap("web-1", generation, valid_for, conn=c)
