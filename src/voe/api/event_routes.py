"""The event log over HTTP: a query, and a live stream (Server-Sent Events)
that resumes from ``Last-Event-ID``."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from sse_starlette.sse import EventSourceResponse

from voe.api.auth import Viewer
from voe.domain.severity import Severity
from voe.store.events import EventQuery

router = APIRouter(tags=["events"])
POLL_SECONDS = 0.2


@router.get("/events/log", summary="Query the event log")
def query_events(request: Request, _: Viewer,
                 persona: str | None = None, host: str | None = None, group: str | None = None,
                 severity: Annotated[Severity | None, Query(description="this severity and above")] = None,
                 kind: str | None = None, since: datetime | None = None, until: datetime | None = None,
                 after_id: Annotated[int, Query(ge=0)] = 0,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 newest_first: bool = False) -> list[dict]:
    q = EventQuery(persona, host, group, severity, kind, since, until, after_id, limit, newest_first)
    return request.app.state.services.events.query(q)


@router.get("/events", summary="Live event stream (text/event-stream)")
async def stream_events(request: Request, _: Viewer,
                        persona: str | None = None, host: str | None = None, group: str | None = None,
                        severity: Severity | None = None,
                        last_event_id: Annotated[int | None, Header()] = None,
                        after_id: Annotated[int | None, Query(ge=0, description="resume after this id")] = None):
    log = request.app.state.services.events
    start = last_event_id if last_event_id is not None else after_id
    if start is None:  # a new subscriber starts from now, not from the beginning
        newest = log.query(EventQuery(limit=1, newest_first=True))
        start = newest[0]["id"] if newest else 0

    async def follow():
        cursor = start
        while not await request.is_disconnected():
            batch = await asyncio.to_thread(log.query, EventQuery(persona, host, group, severity, after_id=cursor, limit=500))
            for ev in batch:
                cursor = ev["id"]
                # unnamed ("message") events: a browser's EventSource.onmessage
                # sees every kind without knowing them; the kind is in the data
                yield {"id": str(ev["id"]), "data": json.dumps(ev)}
            if not batch:
                await asyncio.sleep(POLL_SECONDS)

    return EventSourceResponse(follow(), ping=15)
