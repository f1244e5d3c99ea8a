"""What booting machines and agents call (their iPXE scripts, their
configuration, their heartbeats), served by a process of its own on a port
of its own (``voe serve --agent-port``).

Why: at scale these requests are most of what a controller serves, and
served by the controller's own process they take the CPU that starts and
failovers need. Served apart, they cost the controller one message per
beat.

The agent service reads the store as the controller's API does: tokens,
incarnations and persona states, the inventory, boot scripts. It answers
every request from there, so a beat from an ended generation is answered
"stale" as soon as the end is committed, and a stop as soon as it is asked.
Only three things cross the pipe: each beat, to the controller, whose
reconciler judges silence from the beats in its memory; each boot stage a
machine reaches (its script fetched, its agent's configuration), recorded
by the controller; and the beat interval agents are told (see
``controller.pacing``), from the controller, every ``PACE_EVERY`` seconds.
A service that has not heard from its controller for ``CONTROLLER_QUIET``
seconds (the controller paused, or hung) answers beats 503, so that agents
beat to another controller rather than into a pipe nobody reads.
A beat answered but lost on the way (the controller stopping) only makes
the persona look silent, which asks for evidence, never for a second start.

The controller binds the port and hands the socket over, so the port is
taken once, at ``voe serve``, and a service that dies is started again on
the same socket at once: machines and agents keep the one URL.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import multiprocessing
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException

from voe.api import agent_routes
from voe.api.app import API, install_error_handlers
from voe.api.auth_failures import AuthFailures
from voe.controller.timing import CONTROLLER_QUIET
from voe.store.runtime import RuntimeStore
from voe.tls import TlsFiles

log = logging.getLogger("voe.agent_service")

PACE_EVERY = 0.25
"""Seconds between the messages that tell the service the interval agents
are told (and that its controller is alive)."""
RESTART_AFTER = 0.2
"""Seconds before a service that died is started again: agents resend a
beat that went unanswered, and a service that cannot start (its store
unreachable) is not started in a tight loop."""


class AgentService:
    """The controller's end: binds the agent port, starts the service
    process with the socket, records the beats it forwards, tells it the
    pace and the controllers to name to agents, and starts it again if it
    dies."""

    def __init__(self, runtime: RuntimeStore, pace, data_dir, database_url: str | None, host: str, port: int,
                 tls: TlsFiles | None = None, boot_port: int | None = None,
                 agent_urls: Callable[[], list[str]] = lambda: []):
        self.runtime, self.pace, self.agent_urls = runtime, pace, agent_urls
        self._args = ["--data-dir", str(data_dir)] + (["--database-url", database_url] if database_url else [])
        if tls is not None:
            self._args += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
            self._args += ["--tls-ca", str(tls.ca)] if tls.ca is not None else []
        self.sock = _bind(host, port)
        self.boot_sock = _bind(host, boot_port) if boot_port is not None else None
        """The boot port, served by this process too (plain HTTP): at scale
        a machine's script fetched from a controller busy starting its
        level waits for the controller's interpreter."""
        self._closed = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        self._spawn()
        self._thread = threading.Thread(target=self._serve, name="voe-agent-service", daemon=True)
        self._thread.start()

    def wait_until_serving(self, patience: float = 30.0) -> bool:
        """Whether the service answers within ``patience`` seconds: the
        reconciler starts judging silences only once beats can arrive.
        Only that it answers is asked: its certificate is the controller's
        own, so it is not checked here."""
        host, port = self.sock.getsockname()[:2]
        tls = "--tls-cert" in self._args
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((host, port), timeout=1) as raw:
                    c = _unchecked_tls().wrap_socket(raw) if tls else raw
                    c.sendall(b"GET /healthz HTTP/1.1\r\nHost: voe\r\nConnection: close\r\n\r\n")
                    if c.recv(12).startswith(b"HTTP/1.1 200"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def _spawn(self) -> None:
        """A new interpreter, not a fork of the threaded controller."""
        ours, theirs = multiprocessing.Pipe()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", __name__, str(theirs.fileno()), str(self.sock.fileno()), *self._args,
             *(["--boot-socket", str(self.boot_sock.fileno())] if self.boot_sock is not None else [])],
            pass_fds=(theirs.fileno(), self.sock.fileno(), *([self.boot_sock.fileno()] if self.boot_sock else [])),
            start_new_session=True)  # a Ctrl-C at the terminal is the controller's to handle; its pipe ends this
        theirs.close()
        self._conn = ours

    def _serve(self) -> None:
        told_at = 0.0
        while not self._closed.is_set():
            conn = self._conn
            try:
                if time.monotonic() - told_at >= PACE_EVERY:
                    conn.send((self.pace.interval, self.pace.lease(), self.agent_urls()))
                    told_at = time.monotonic()
                if conn.poll(PACE_EVERY):
                    self._record(conn.recv())
                    while conn.poll(0):
                        self._record(conn.recv())
            except (EOFError, OSError):
                if self._closed.is_set():
                    return
                log.error("the agent service exited (%s); starting it again", self._proc.poll())
                self._proc.wait()
                conn.close()
                if self._closed.wait(RESTART_AFTER):
                    return
                self._spawn()
                told_at = 0.0

    def _record(self, message: tuple) -> None:
        """One beat into the controller's memory, or one boot stage into
        the store. One that cannot be recorded is logged and the next one
        read: were this thread to end, every persona would fall silent to
        the reconciler at once."""
        try:
            kind, *fields = message
            if kind == "beat":
                persona, generation, ready, stopping, report, told = fields
                self.runtime.beats.record(persona, generation, ready, stopping, report, told=told)
            elif kind == "stage":
                self.runtime.record_boot_stage(*fields)
        except Exception:
            log.exception("could not record a message from the agent service: %r", message)

    def close(self) -> None:
        """Closing the pipe ends the process (see ``main``)."""
        self._closed.set()
        try:
            with socket.fromfd(self._conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.shutdown(socket.SHUT_RDWR)  # wakes the reader; the child reads EOF
        except (AttributeError, OSError):
            pass  # never started, or closed by a restart under way
        if self._thread is not None:
            self._thread.join(5)
        if self._proc is not None:
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self.sock.close()
        if self.boot_sock is not None:
            self.boot_sock.close()


def _unchecked_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _bind(host: str, port: int, patience: float = 5.0) -> socket.socket:
    """A port of the service, bound but not listening, waiting a little for
    a service of a controller killed just before to let go of it (it exits
    when its pipe closes). The service listens once it serves, and until
    then a connection is refused, not queued, so that an agent beats to (and
    a booting machine fetches its script from) another controller at once
    rather than wait for this one to start."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    deadline = time.monotonic() + patience
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError as e:
            sock.close()
            if e.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
            continue
        sock.set_inheritable(True)
        return sock


# --- the service process -------------------------------------------------------------


class PaceHeard:
    """The pace as the controller last told it (``controller.pacing.BeatPace``'s
    two readings), and the controllers it names to agents."""

    def __init__(self, interval: float, lease: float) -> None:
        self.interval, self._lease = interval, lease
        self.controllers: list[str] = []

    def lease(self) -> float:
        return self._lease


def agent_app(services, pace, record_beat: Callable[..., None], record_boot_stage: Callable[..., None],
              ca_pem: bytes | None = None) -> FastAPI:
    """The agent routes alone, over the store."""
    app = FastAPI(title="voe agent service", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.ca_pem = ca_pem
    app.state.auth_failures = AuthFailures()
    app.state.services = services
    app.state.runtime = services.runtime
    app.state.pace = pace
    app.state.agent_urls = lambda: pace.controllers
    app.state.record_beat = record_beat
    app.state.record_boot_stage = record_boot_stage
    api = APIRouter(prefix=API)
    api.include_router(agent_routes.router)
    app.include_router(agent_routes.boot_router)
    app.include_router(api)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"ok": True, "serves": "agents"}

    install_error_handlers(app)
    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn
    import uvloop

    from voe import logs
    from voe.api.boot_service import boot_app
    from voe.controller.services import Services
    from voe.controller.timing import Timing
    from voe.process import KEEP_ALIVE, collect_cycles_less_often, open_files_to_the_limit

    ap = argparse.ArgumentParser(prog="python -m voe.api.agent_service")
    ap.add_argument("pipe", type=int)
    ap.add_argument("socket", type=int)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--database-url")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--tls-ca")
    ap.add_argument("--boot-socket", type=int)
    ns = ap.parse_args(argv)
    logs.configure("agent-service")  # the controller's format, from the environment
    open_files_to_the_limit()
    collect_cycles_less_often()
    conn = Connection(ns.pipe)
    send_lock = threading.Lock()
    timing = Timing.from_env()
    pace = PaceHeard(timing.heartbeat_interval, timing.suspect_after)
    heard_at = [time.monotonic()]  # when the controller last spoke

    def record_beat(persona, generation, ready, stopping, report, told=None) -> None:
        if time.monotonic() - heard_at[0] > CONTROLLER_QUIET:
            raise HTTPException(503, "this controller does not answer: beat to another")
        with send_lock:
            conn.send(("beat", persona, generation, ready, stopping, report, told))

    def record_boot_stage(persona, generation, stage) -> None:
        with send_lock:
            conn.send(("stage", persona, generation, stage))

    def follow_pace() -> None:
        while True:
            try:
                pace.interval, pace._lease, pace.controllers = conn.recv()
                heard_at[0] = time.monotonic()
            except (EOFError, OSError):
                os._exit(0)  # the controller closed its end, or died: so does its agent service

    threading.Thread(target=follow_pace, name="voe-pace", daemon=True).start()
    services = Services.open(ns.data_dir, ns.database_url)
    sock = socket.socket(fileno=ns.socket)
    ca_pem = Path(ns.tls_ca).read_bytes() if ns.tls_ca else None
    app = agent_app(services, pace, record_beat, record_boot_stage, ca_pem)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, timeout_keep_alive=KEEP_ALIVE,
                                           ssl_certfile=ns.tls_cert, ssl_keyfile=ns.tls_key))
    if ns.boot_socket is None:
        server.run(sockets=[sock])
        return
    boot = uvicorn.Server(uvicorn.Config(boot_app(services, record_boot_stage, ca_pem), log_config=None))

    async def serve_both() -> None:
        await asyncio.gather(server.serve(sockets=[sock]), boot.serve(sockets=[socket.socket(fileno=ns.boot_socket)]))

    uvloop.run(serve_both())


if __name__ == "__main__":
    main()
