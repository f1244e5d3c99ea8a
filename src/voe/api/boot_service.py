"""The boot port: the controller's one plain-HTTP listener, for firmware
that has no CA to check. It serves iPXE scripts by MAC and the CA agents
pin, and nothing else: no token, no configuration, no API.

It is served by the agent service's process when there is one (a level of
hundreds of machines fetching scripts from a controller busy starting them
would wait for its interpreter), else by a thread of the controller's
(``BootServer``)."""

from __future__ import annotations

import logging
import queue
import socket
import threading
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from voe.api import agent_routes
from voe.api.app import install_error_handlers

log = logging.getLogger(__name__)


def boot_app(services, record_boot_stage: Callable[..., None], ca_pem: bytes | None) -> FastAPI:
    app = FastAPI(title="voe boot service", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.services = services
    app.state.runtime = services.runtime
    app.state.record_boot_stage = record_boot_stage
    app.state.ca_pem = ca_pem
    app.include_router(agent_routes.boot_router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"ok": True, "serves": "boot files"}

    install_error_handlers(app)
    return app


class BootServer:
    """Binds the boot port at once (a port taken is an error at start, not
    later) and serves the boot app on it from a thread until ``close``.

    A machine's boot stage is recorded by a thread of its own, after the
    script has gone out: the record waits for the store's next group
    commit, which a controller starting a level of hundreds may hold for
    seconds, and firmware that waits that long for its script gives up."""

    def __init__(self, services, ca_pem: bytes | None, host: str, port: int):
        self.sock = socket.create_server((host, port), backlog=1024)
        self._runtime = services.runtime
        self._stages: queue.SimpleQueue[tuple | None] = queue.SimpleQueue()
        app = boot_app(services, lambda *stage: self._stages.put(stage), ca_pem)
        self._server = uvicorn.Server(uvicorn.Config(app, log_config=None))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.sock]},
                                        name="voe-boot-port", daemon=True)
        self._recorder = threading.Thread(target=self._record, name="voe-boot-stages", daemon=True)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def start(self) -> None:
        self._recorder.start()
        self._thread.start()

    def _record(self) -> None:
        while (stage := self._stages.get()) is not None:
            try:
                self._runtime.record_boot_stage(*stage)
            except Exception:  # one stage lost is a hint lost; the thread must go on
                log.exception("could not record boot stage %r", stage)

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._stages.put(None)
        self._recorder.join(10)
        self.sock.close()
