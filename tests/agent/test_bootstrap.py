"""A boot script travels in clear, so it carries a one-use bootstrap token,
never the agent's credential: the agent trades it over TLS (checked against
the CA its script pins) for its credential. A replayed, late or foreign
bootstrap token gets 401 and buys nothing; two exchanges racing with one
token get one credential between them; and the agent service speaks TLS
only."""

from __future__ import annotations

import http.client
import ssl
import threading
from pathlib import Path

import httpx
import pytest

from tests.agent.conftest import MAC, bootstrap
from voe.agent.bootargs import BootArgs
from voe.agent.client import Controller, Stale, Untrusted
from voe.agent.main import obtain_credential


@pytest.fixture
def service(web_agent_service):
    """The agent service's URL and the controller's TLS files."""
    s, tls = web_agent_service
    return f"https://127.0.0.1:{s.sock.getsockname()[1]}", tls


def exchange(url: str, ca: Path, token: str, generation: int = 1) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/agent/credential", json={"persona": "web-1", "generation": generation},
                      headers={"Authorization": f"Bearer {token}"}, verify=ssl.create_default_context(cafile=ca))


def test_an_agent_trades_its_bootstrap_token_once_and_a_replay_gets_401(service, services):
    url, tls = service
    token = bootstrap(services)
    agent = Controller(url, token, ca_pin=tls.pin())  # the CA learned on the wire, checked against the pin
    agent.redeem("web-1", 1)
    assert agent.token != token
    assert agent.call("GET", "/api/v1/agent/config")["persona"] == "web-1"

    replay = exchange(url, tls.ca, token)
    assert replay.status_code == 401
    assert "used already" in replay.json()["detail"]
    with pytest.raises(Stale):
        Controller(url, token, ca_pin=tls.pin()).redeem("web-1", 1)
    # a bootstrap token opens no other door, before or after its use
    assert httpx.get(f"{url}/api/v1/agent/config", headers={"Authorization": f"Bearer {bootstrap(services)}"},
                     verify=ssl.create_default_context(cafile=tls.ca)).status_code == 401


def test_a_late_or_another_incarnations_bootstrap_token_gets_401(service, services):
    url, tls = service
    assert exchange(url, tls.ca, bootstrap(services, valid_for=-1.0)).status_code == 401
    assert exchange(url, tls.ca, bootstrap(services, generation=1), generation=2).status_code == 401
    assert exchange(url, tls.ca, "voe_not-a-token").status_code == 401


def test_two_exchanges_racing_with_one_token_get_one_credential(services):
    services.runtime.begin_incarnation("web-1", "vm", "dl360-1", "web-1", MAC, "test")
    token = bootstrap(services)
    results: list[str | None] = []
    barrier = threading.Barrier(4)

    def redeem() -> None:
        barrier.wait()
        results.append(services.tokens.redeem(token, "web-1", 1))

    threads = [threading.Thread(target=redeem) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    issued = [r for r in results if r is not None]
    assert len(issued) == 1, results
    assert services.tokens.authenticate(issued[0]).persona == "web-1"


def test_an_agent_restarted_within_its_boot_keeps_its_credential(service, services, tmp_path):
    url, tls = service
    args = BootArgs(url, "web-1", 1, bootstrap(services), ca_sha256=tls.pin())
    first = Controller(url, args.token, ca_pin=args.ca_sha256)
    obtain_credential(first, args, tmp_path)
    assert (tmp_path / "run" / "voe-agent" / "credential").stat().st_mode & 0o777 == 0o600
    again = Controller(url, args.token, ca_pin=args.ca_sha256)  # the spent token, read again from the command line
    obtain_credential(again, args, tmp_path)
    assert again.token == first.token
    assert again.call("GET", "/api/v1/agent/config")["generation"] == 1


def test_an_agent_refuses_a_controller_whose_ca_is_not_the_pinned_one(service, services):
    url, _ = service
    with pytest.raises(Untrusted, match="not the pinned"):
        Controller(url, bootstrap(services), ca_pin="00" * 32).redeem("web-1", 1)


def test_the_agent_service_refuses_plain_http(service):
    url, _ = service
    port = int(url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        conn.request("GET", "/api/v1/agent/config")
        conn.getresponse()
    conn.close()


def test_an_exchange_answered_slower_than_a_beat_still_buys_the_credential(services, live_controller, monkeypatch):
    """A controller starting a thousand personas may answer an exchange in
    seconds; the token is spent when it answers, so the agent must not give
    up and ask again (a second try is refused)."""
    import os
    import time

    url, _ = live_controller
    services.runtime.begin_incarnation("web-1", "vm", "dl360-1", "web-1", MAC, "test")
    token = bootstrap(services)
    redeem = services.tokens.redeem

    def slowly(*args):
        time.sleep(3.0)  # longer than a beat's 2-s wait
        return redeem(*args)

    monkeypatch.setattr(services.tokens, "redeem", slowly)
    agent = Controller(url, token, ca=os.environ["VOE_CA"])
    agent.redeem("web-1", 1)
    assert services.tokens.authenticate(agent.token).persona == "web-1"
    assert agent.timeout == 2.0  # beats keep their own patience
