"""The lab's personas boot their agent from one pre-imported interpreter.

A persona's OS in the lab is the real agent as a process of its own. Started
as ``python -m voe.agent``, each would spend tens of milliseconds of CPU
importing before it did anything, and a level of a group start boots
hundreds at once, on the machine the controller under test runs on.
Here one process (the zygote) imports the agent once and forks it for each
boot, as an OS boots from a disk image rather than building itself. The
agent's code runs unchanged: its arguments, a session and process group of
its own (power-off kills the group), stdout and stderr to its log, and its
command line in ``ps``.

Not ``multiprocessing``'s forkserver: each of its children imports the
parent's main module again (the lab's whole CLI), which cost more than the
import it saved.

The lab talks to the zygote over its stdin and stdout, one JSON object per
line: ``{"argv": [...], "log": path}`` asks for an agent and is answered
``{"pid": n}``; ``{"exited": n, "code": c}`` says an agent ended (negative:
the signal that ended it).
"""

from __future__ import annotations

import json
import os
import select
import shlex
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path

import setproctitle

from voe.agent.main import main as agent_main


class AgentZygote:
    """The lab's end: starts the zygote on first use and forks agents
    through it. ``spawn`` returns a handle shaped like ``Popen`` (``pid``,
    ``poll``, ``wait``), so a lab machine's OS treats it as any process."""

    def __init__(self):
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()  # one request and its answer at a time
        self._pids: list[int] = []  # answers to requests, in order
        self._answered = threading.Condition()
        self._ended: dict[int, threading.Event] = {}
        self._codes: dict[int, int] = {}

    def spawn(self, argv: list[str], log: Path) -> ForkedAgent:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            self._proc.stdin.write(json.dumps({"argv": argv, "log": str(log)}) + "\n")
            self._proc.stdin.flush()
            with self._answered:
                if not self._answered.wait_for(lambda: self._pids, timeout=10):
                    raise OSError("the lab's agent zygote did not answer a boot within 10 s")
                pid = self._pids.pop(0)
            return ForkedAgent(pid, self, self._proc)

    def _start(self) -> None:
        self._proc = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, bufsize=1)
        threading.Thread(target=self._listen, args=(self._proc,), name="lab-zygote", daemon=True).start()

    def _listen(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            msg = json.loads(line)
            if "pid" in msg:
                # a pid can be an ended agent's again: its end is not this one's
                self._codes.pop(msg["pid"], None)
                self._ended[msg["pid"]] = threading.Event()
                with self._answered:
                    self._pids.append(msg["pid"])
                    self._answered.notify_all()
            else:
                self._codes[msg["exited"]] = msg["code"]
                self.ended(msg["exited"]).set()

    def ended(self, pid: int) -> threading.Event:
        """Set when the zygote reports that agent's end."""
        return self._ended.setdefault(pid, threading.Event())

    def exit_code(self, pid: int) -> int | None:
        return self._codes.get(pid)


BELOW_THE_DEVICES = 5
"""How much nicer the machines' OSes (the agents, forked from here) run
than the lab's devices. A BMC is a processor of its own, never slowed by
its server's OS, and here a level of hundreds of agents booting at once
would take the CPU from the lab's BMCs while they answer the next level's
power-ons. The agents' beats have seconds of slack; a power-on has none."""

UNKNOWN_EXIT = -1
"""An agent whose zygote died before reporting its end: init reaped it."""


class ForkedAgent:
    def __init__(self, pid: int, zygote: AgentZygote, forked_by: subprocess.Popen):
        self.pid = pid
        self._zygote = zygote
        self._forked_by = forked_by

    def poll(self) -> int | None:
        code = self._zygote.exit_code(self.pid)
        if code is None and self._orphan_gone():
            return UNKNOWN_EXIT
        return code

    def wait(self) -> int | None:
        ended = self._zygote.ended(self.pid)
        while not ended.wait(0.5) and not self._orphan_gone():
            pass
        return self.poll()

    def _orphan_gone(self) -> bool:
        """Its zygote is dead (it reports nothing more) and so is it."""
        return self._forked_by.poll() is not None and not Path(f"/proc/{self.pid}").exists()


# --- the zygote process -------------------------------------------------------


def _serve() -> None:
    """Fork an agent per request; report each one's end. A SIGCHLD wakes
    the loop at once: a lab machine powered off waits for its agent's end.

    The agents are the machines' OSes, and a lab that goes takes its
    machines with it: when the lab's end of the pipe closes (the lab
    exited, or was killed), or this process is asked to end (SIGTERM, or
    a terminal's Ctrl-C reaching the lab's process group), every agent
    still running is killed, with its session, before this one exits.
    Each agent leads a session of its own, so nothing else would."""
    woken_r, woken_w = os.pipe()
    os.set_blocking(woken_w, False)
    signal.set_wakeup_fd(woken_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    asked_to_end = threading.Event()
    for ending in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(ending, lambda *_: asked_to_end.set())
    agents: set[int] = set()
    pending = b""
    while not asked_to_end.is_set():
        ready, _, _ = select.select([0, woken_r], [], [])
        if woken_r in ready:
            os.read(woken_r, 512)
            agents -= _report_ended()
        if 0 in ready:
            chunk = os.read(0, 65536)
            if not chunk:
                break  # the lab is gone
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                req = json.loads(line)
                # its pid is told once it leads its own session: a power-off
                # right after the boot kills that session (killpg), which must
                # exist by then
                session_r, session_w = os.pipe()
                pid = os.fork()
                if pid == 0:
                    os.close(woken_r)
                    os.close(woken_w)
                    os.close(session_r)
                    _become_agent(req["argv"], req["log"], session_w)
                os.close(session_w)
                os.read(session_r, 1)  # end of file: the child's end closed after setsid
                os.close(session_r)
                agents.add(pid)
                _say({"pid": pid})
    _end_all(agents)


def _end_all(agents: set[int]) -> None:
    """Every agent still running killed, with its session's processes."""
    for pid in agents:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass  # ended meanwhile
    for pid in agents:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _report_ended() -> set[int]:
    ended = set()
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.add(pid)
        _say({"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def _say(msg: dict) -> None:
    try:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()
    except OSError:
        pass  # the lab is gone: its end of the pipe closing ends the loop


def _become_agent(argv: list[str], log: str, session_made: int) -> None:
    """In the forked child: what ``Popen(..., start_new_session=True,
    stdout=log, stderr=STDOUT, stdin=DEVNULL)`` sets up, then the agent;
    ``session_made`` is closed once it leads its own session."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    os.close(session_made)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    setproctitle.setproctitle(shlex.join(["voe.agent", *argv]))  # what ps shows, as for a started command
    code = 1
    try:
        agent_main(argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    os.nice(BELOW_THE_DEVICES)
    _serve()
