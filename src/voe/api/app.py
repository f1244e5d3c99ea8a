"""The controller's HTTP face: REST under /api/v1 with its OpenAPI document at
/api/v1/openapi.json. Errors from every layer become JSON here, in one place:
422 names the field and the rule, 409 the conflict, 404 the missing object,
and anything unexpected a 500 with a request id that the log names, never
a traceback.

Every request gets an id (the caller's ``X-Request-ID`` when it sends a
usable one), answered in the same header, recorded in every event the
request causes with the name of its token, and named by the log; writes
are logged with their outcome (logger ``voe.api.access``)."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError, OperationalError

from voe import __version__
from voe.api import (
    agent_routes,
    backup_routes,
    controller_routes,
    document_routes,
    driver_routes,
    event_routes,
    fabric_routes,
    inventory_routes,
    lifecycle_routes,
    metrics_routes,
    template_routes,
    token_routes,
)
from voe.api.auth_failures import AuthFailures
from voe.api.controller_face import ControllerFace
from voe.api.responses import document_errors
from voe.cause import CAUSE, Cause
from voe.controller.pacing import BeatPace
from voe.controller.services import Services
from voe.controller.timing import Timing
from voe.domain.inventory import problems_from
from voe.domain.models import KINDS
from voe.errors import Conflict, DriverError, InvalidInventory, NotFound

API = "/api/v1"
CONSOLE_DIST = Path(__file__).resolve().parent.parent / "console" / "dist"
_NOT_AN_OBJECT = {"model_attributes_type", "dict_type"}  # pydantic's types for "this should be an object"

log = logging.getLogger(__name__)
access = logging.getLogger("voe.api.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_READS = {"GET", "HEAD", "OPTIONS"}


class RequestIds:
    """ASGI middleware: the request's ``Cause`` for its whole length (the
    endpoint, its dependencies and the worker thread it runs on), its id
    in the answer's ``X-Request-ID``, and each write in the access log."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        asked = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        cause = Cause(asked if _REQUEST_ID.fullmatch(asked) else secrets.token_hex(8))
        token = CAUSE.set(cause)
        status, started = 500, False
        began = time.monotonic()

        async def send_with_id(message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message.setdefault("headers", []).append((b"x-request-id", cause.request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # here, not outside: the answer carries this request's id
            if started:
                raise  # an answer under way cannot be replaced
            await _failed(cause.request_id, scope["method"], scope["path"], exc)(scope, receive, send_with_id)
        finally:
            if scope["method"] not in _READS:
                access.info("%s %s %s in %.0f ms", scope["method"], scope["path"], status,
                            (time.monotonic() - began) * 1000,
                            extra={"method": scope["method"], "path": scope["path"], "status": status})
            CAUSE.reset(token)


def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    root = _body_model(request)
    problems = problems_from(exc.errors(), root, ()) if root else None
    detail = [p.as_dict() for p in problems] if problems else [_plain(e) for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


def _plain(error: dict) -> dict:
    """One validation error as JSON can carry it: a refused body that is not
    JSON (bytes) echoed as text, the rule's context as strings, and the fix
    when the body is not a JSON object."""
    out = {"loc": list(error.get("loc", ())), "msg": str(error.get("msg", "")), "type": str(error.get("type", ""))}
    if out["loc"] == ["body"] and out["type"] in _NOT_AN_OBJECT:
        out["msg"] = "the request body must be a JSON object, sent with Content-Type: application/json"
    refused = error.get("input")
    if isinstance(refused, bytes | bytearray):
        refused = bytes(refused[:200]).decode("utf-8", "replace")
    try:
        json.dumps(refused)
        out["input"] = refused
    except (TypeError, ValueError):
        out["input"] = repr(refused)[:200]
    if isinstance(error.get("ctx"), dict):
        out["ctx"] = {k: str(v) for k, v in error["ctx"].items()}
    return out


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return _failed(secrets.token_hex(8), request.method, request.url.path, exc)


def _failed(request_id: str, method: str, path: str, exc: Exception) -> JSONResponse:
    log.error("request %s (%s %s) failed", request_id, method, path, exc_info=exc)
    return JSONResponse({"detail": "the controller failed on this request; its log says why under this request id",
                         "request_id": request_id}, status_code=500)


def _body_model(request: Request):
    parts = request.url.path.removeprefix(API).strip("/").split("/")
    return KINDS.get(parts[0]) if parts and parts[0] else None


def create_app(services: Services, timing: Timing | None = None, controller: ControllerFace | None = None,
               ca_pem: bytes | None = None) -> FastAPI:
    """The API over ``services``; with a ``controller``, it runs for the app's
    lifetime; ``ca_pem``: the CA that signs its certificate, served to agents."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if controller is not None:
            controller.start()
        yield
        if controller is not None:
            controller.stop()

    app = FastAPI(title="voe controller", version=__version__, openapi_url=f"{API}/openapi.json",
                  docs_url=f"{API}/docs", redoc_url=None, lifespan=lifespan)
    app.state.services = services
    app.state.runtime = services.runtime
    app.state.record_beat = services.runtime.beats.record  # the agent service forwards its beats here
    app.state.record_boot_stage = services.runtime.record_boot_stage
    app.state.timing = timing or Timing()
    app.state.pace = controller.pace if controller is not None else BeatPace(app.state.timing)
    app.state.controller = controller
    app.state.agent_urls = controller.agent_urls if controller is not None else lambda: []
    app.state.ca_pem = ca_pem
    app.state.auth_failures = AuthFailures()

    # routes are matched in order, one by one: the agents' beats, config and
    # boot-script fetches are most requests, so they are tried first
    api = APIRouter(prefix=API)
    for r in (agent_routes.router, *inventory_routes.all_routers(), document_routes.router, token_routes.router,
              event_routes.router, lifecycle_routes.router, fabric_routes.router, driver_routes.router,
              template_routes.router, backup_routes.router, controller_routes.router):
        document_errors(r)
        api.include_router(r)
    for r in (agent_routes.boot_router, metrics_routes.router):
        document_errors(r)
    app.include_router(agent_routes.boot_router)
    app.include_router(api)
    app.include_router(metrics_routes.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"ok": True, "version": __version__}

    if CONSOLE_DIST.is_dir():  # built by scripts/setup.sh from console/
        app.mount("/", StaticFiles(directory=CONSOLE_DIST, html=True), name="console")

    install_error_handlers(app)
    app.add_middleware(RequestIds)
    return app


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(InvalidInventory, lambda r, e: JSONResponse(
        {"detail": [p.as_dict() for p in e.problems]}, status_code=422))
    app.add_exception_handler(Conflict, lambda r, e: JSONResponse(
        {"detail": e.reason, "loc": list(e.loc)}, status_code=409))
    app.add_exception_handler(NotFound, lambda r, e: JSONResponse({"detail": str(e)}, status_code=404))
    app.add_exception_handler(DriverError, lambda r, e: JSONResponse(
        {"detail": str(e), "device": e.device, "operation": e.operation}, status_code=502))
    app.add_exception_handler(DataError, lambda r, e: JSONResponse(
        {"detail": [{"loc": ["body"], "type": "store_refused", "msg": (
            "the store cannot hold a value of this request (PostgreSQL refuses the NUL character, \\u0000, "
            "in text): remove it")}]}, status_code=422))
    app.add_exception_handler(OperationalError, lambda r, e: JSONResponse(
        {"detail": "the store does not answer (restarting, or out of reach): try again shortly"}, status_code=503))
    app.add_exception_handler(Exception, _unexpected)
