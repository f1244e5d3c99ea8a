"""The agent keeps one connection to the controller from beat to beat, and
a connection the controller closed meanwhile (its idle timeout, a restart)
costs no beat."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from voe.agent.client import Controller, Stale, Unreachable


class _Controller(ThreadingHTTPServer):
    """Answers every POST with the beat's own body; counts connections and
    can drop each one after its first answer, as an idle timeout does."""

    daemon_threads = True

    def __init__(self, status: int = 200):
        self.connections = 0
        self.status = status
        self.close_after_answer = False
        self.beats: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                server.connections += 1

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.beats.append({"auth": self.headers["Authorization"], **json.loads(body)})
                out = json.dumps({"action": "continue"}).encode()
                self.send_response(server.status)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
                self.wfile.flush()
                if server.close_after_answer:
                    # closed without saying so, like a server's idle timeout
                    self.close_connection = True

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def controller():
    c = _Controller()
    threading.Thread(target=c.serve_forever, daemon=True).start()
    yield c
    c.shutdown()
    c.server_close()


def test_beats_share_one_connection(controller):
    agent = Controller(controller.url, "voe_t")
    for n in range(5):
        assert agent.call("POST", "/api/v1/agent/heartbeat", {"generation": 1, "n": n}) == {"action": "continue"}
    assert controller.connections == 1
    assert [b["n"] for b in controller.beats] == [0, 1, 2, 3, 4]
    assert controller.beats[0]["auth"] == "Bearer voe_t"


def test_a_connection_the_controller_closed_is_opened_again_without_losing_the_beat(controller):
    controller.close_after_answer = True
    agent = Controller(controller.url, "voe_t")
    for n in range(3):
        assert agent.call("POST", "/api/v1/agent/heartbeat", {"generation": 1, "n": n}) == {"action": "continue"}
    assert [b["n"] for b in controller.beats] == [0, 1, 2]  # each sent once
    assert controller.connections == 3


def test_a_refusal_is_stale_and_silence_is_unreachable():
    refusing = _Controller(status=409)
    threading.Thread(target=refusing.serve_forever, daemon=True).start()
    try:
        with pytest.raises(Stale, match="409"):
            Controller(refusing.url, "voe_t").call("POST", "/api/v1/agent/heartbeat", {"generation": 1})
    finally:
        refusing.shutdown()
        url = refusing.url
        refusing.server_close()
    with pytest.raises(Unreachable):
        Controller(url, "voe_t", timeout=0.5).call("POST", "/api/v1/agent/heartbeat", {"generation": 1})
