"""The controller's HTTP face: REST under /api/v1 with its OpenAPI document at
/api/v1/openapi.json. Errors from every layer become JSON here, in one place:
422 names the field and the rule, 409 the conflict, 404 the missing object,
and anything unexpected a 500 with a request id that the log names, never
a traceback."""

from __future__ import annotations

import json
import logging
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from voe import __version__
from voe.api import (
    agent_routes,
    backup_routes,
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
from voe.api.controller_face import ControllerFace
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
    request_id = uuid.uuid4().hex[:16]
    log.error("request %s (%s %s) failed", request_id, request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "the controller failed on this request; its log says why under this request id",
                         "request_id": request_id}, status_code=500)


def _body_model(request: Request):
    parts = request.url.path.removeprefix(API).strip("/").split("/")
    return KINDS.get(parts[0]) if parts and parts[0] else None


def create_app(services: Services, timing: Timing | None = None, controller: ControllerFace | None = None) -> FastAPI:
    """The API over ``services``; with a ``controller``, it runs for the app's lifetime."""

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

    # routes are matched in order, one by one: the agents' beats, config and
    # boot-script fetches are most requests, so they are tried first
    api = APIRouter(prefix=API)
    api.include_router(agent_routes.router)
    for r in inventory_routes.all_routers():
        api.include_router(r)
    api.include_router(document_routes.router)
    api.include_router(token_routes.router)
    api.include_router(event_routes.router)
    api.include_router(lifecycle_routes.router)
    api.include_router(fabric_routes.router)
    api.include_router(driver_routes.router)
    api.include_router(template_routes.router)
    api.include_router(backup_routes.router)
    app.include_router(agent_routes.boot_router)
    app.include_router(api)
    app.include_router(metrics_routes.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"ok": True, "version": __version__}

    if CONSOLE_DIST.is_dir():  # built by scripts/setup.sh from console/
        app.mount("/", StaticFiles(directory=CONSOLE_DIST, html=True), name="console")

    install_error_handlers(app)
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
    app.add_exception_handler(Exception, _unexpected)
