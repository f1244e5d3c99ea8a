"""The boot port: the controller's one plain-HTTP listener, for firmware
that has no CA to check. It serves iPXE scripts by MAC and the CA agents
pin, and nothing else: no token, no configuration, no API.

It runs in a thread of the controller's process: a machine fetches its
script once per start, a load that needs no process of its own."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from voe.api import agent_routes
from voe.api.app import install_error_handlers


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
    later) and serves ``app`` on it from a thread until ``close``."""

    def __init__(self, app: FastAPI, host: str, port: int):
        self.sock = socket.create_server((host, port), backlog=1024)
        self._server = uvicorn.Server(uvicorn.Config(app, log_config=None))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.sock]},
                                        name="voe-boot-port", daemon=True)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self.sock.close()
