"""``GET /metrics``: the controller's metrics in the Prometheus text
format, for a scraper holding a viewer token (Prometheus' ``authorization``
setting sends it as a bearer token)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from voe.api.auth import Viewer

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="The controller's metrics (Prometheus text format)", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}},
                       404: {"description": "this process serves the API without a controller"}})
def metrics(request: Request, _: Viewer) -> Response:
    controller = request.app.state.controller
    if controller is None:
        raise HTTPException(404, "no metrics here: this process serves the API without a controller "
                                 "(voe serve runs one)")
    return Response(generate_latest(controller.metrics), media_type=CONTENT_TYPE_LATEST)
