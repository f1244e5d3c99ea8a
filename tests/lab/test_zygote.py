"""The lab's agents forked from the zygote behave as started processes:
their own session (power-off kills the group), their log, their command
line, and an exit code the lab can wait for."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from voe.lab.zygote import UNKNOWN_EXIT, AgentZygote

UNREACHABLE = "voe.persona=web-1 voe.generation=1 voe.token=t voe.controller=http://127.0.0.1:9"


@pytest.fixture(scope="module")
def zygote():
    return AgentZygote()


def test_a_forked_agent_runs_in_its_own_session_and_dies_with_its_group(zygote, tmp_path):
    agent = zygote.spawn(["--network-backend", "rendered", "--cmdline", UNREACHABLE, "--root", str(tmp_path)],
                         tmp_path / "agent.log")
    cmdline = ""
    deadline = time.monotonic() + 5
    while not cmdline.startswith("voe.agent ") and time.monotonic() < deadline:  # the child sets it as it starts
        cmdline = Path(f"/proc/{agent.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        time.sleep(0.01)
    assert cmdline.startswith("voe.agent ") and "voe.persona=web-1" in cmdline
    assert agent.poll() is None
    assert os.getsid(agent.pid) == agent.pid and os.getpgid(agent.pid) == agent.pid
    os.killpg(agent.pid, signal.SIGKILL)
    assert agent.wait() == -signal.SIGKILL
    assert agent.poll() == -signal.SIGKILL


def test_a_forked_agent_exits_with_the_agents_code_and_writes_its_log(zygote, tmp_path):
    agent = zygote.spawn(["--network-backend", "rendered", "--root", str(tmp_path)], tmp_path / "agent.log")
    assert agent.wait() == 2  # no boot parameters: the agent's own "bad parameters" exit
    assert "voe-agent" in (tmp_path / "agent.log").read_text()


def test_an_agent_whose_zygote_died_can_still_be_powered_off_and_waited_for(tmp_path):
    """A lab machine's power-off kills the agent and waits for its end; the
    zygote that would have reported it is gone, and the wait must not hang."""
    zygote = AgentZygote()
    agent = zygote.spawn(["--network-backend", "rendered", "--cmdline", UNREACHABLE, "--root", str(tmp_path)],
                         tmp_path / "agent.log")
    zygote._proc.kill()
    zygote._proc.wait()
    assert agent.poll() is None  # orphaned, still running
    os.killpg(agent.pid, signal.SIGKILL)
    assert agent.wait() == UNKNOWN_EXIT
