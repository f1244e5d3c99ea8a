"""The controllers that share this store: which one leads, in which term,
and when each last gave a sign of life (``voe controller list``)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from voe.api.auth import Viewer
from voe.store.leadership import Leases

router = APIRouter(tags=["controllers"])


@router.get("/controllers", summary="Every controller of this store: its URLs, whether it leads, its term, "
                                    "when it last renewed")
def controllers(request: Request, _: Viewer) -> list[dict]:
    return [c.as_dict() for c in Leases(request.app.state.services.engine, "").controllers()]
