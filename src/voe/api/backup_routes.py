"""The whole store as one file, read from a snapshot while the controller
runs (``voe backup``); restoring is done with the controllers stopped
(``voe restore``), so it has no route."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from voe.api.auth import Admin
from voe.store.backup import backup_chunks

router = APIRouter(tags=["backup"])


@router.get("/backup", summary="A consistent backup of the whole store (gzip JSON lines; secrets stay sealed)",
            response_class=StreamingResponse, responses={200: {"content": {"application/gzip": {}}}})
def backup(request: Request, who: Admin) -> StreamingResponse:
    services = request.app.state.services
    services.events.append("info", "audit", f"backup taken by {who.name}")
    name = f"voe-backup-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.jsonl.gz"
    return StreamingResponse(backup_chunks(services.engine), media_type="application/gzip",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})
