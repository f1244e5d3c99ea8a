"""An agent whose beats go unanswered keeps beating, and says so on its
console once per silence, then again when it is heard: the console of a
persona fenced for its silence tells whether the agent ran and could not
reach its controller, or did not run at all."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

from tests.agent.conftest import bootstrap


def console_lines(stream) -> queue.Queue:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    return lines


def until_said(lines: queue.Queue, words: str, patience: float = 20.0) -> list[str]:
    """The lines the agent says up to the first with ``words``."""
    said: list[str] = []
    deadline = time.monotonic() + patience
    while not said or words not in said[-1]:
        try:
            said.append(lines.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            raise AssertionError(f"the agent never said {words!r}, only {said}") from None
    return said


def test_an_agent_says_when_its_beats_go_unanswered_and_when_they_are_answered_again(web_agent_service, services,
                                                                                       tmp_path):
    service, tls = web_agent_service
    words = (f"voe.controller=https://127.0.0.1:{service.sock.getsockname()[1]} voe.persona=web-1 "
             f"voe.generation=1 voe.token={bootstrap(services)} voe.ca_sha256={tls.pin()}")
    agent = subprocess.Popen([sys.executable, "-m", "voe.agent", "--root", str(tmp_path), "--network-backend",
                              "rendered", "--cmdline", words], stderr=subprocess.PIPE, text=True)
    try:
        lines = console_lines(agent.stderr)
        until_said(lines, "web-1 generation 1 configured")
        os.kill(service.pid, signal.SIGSTOP)  # the controller's end still accepts connections, and answers nothing
        assert "beating on" in until_said(lines, "heartbeat not answered")[-1]
        time.sleep(3.0)  # beats time out after 2 s each: a silence of more than one
        os.kill(service.pid, signal.SIGCONT)
        said = until_said(lines, "heartbeats answered again after")
        assert agent.poll() is None  # it never stopped beating
    finally:
        os.kill(service.pid, signal.SIGCONT)
        agent.kill()
        agent.wait()
    assert not [line for line in said if "not answered" in line], said  # once per silence, not once per beat
