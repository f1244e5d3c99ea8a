"""Tokens and identity."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from voe.api.auth import Admin, Anyone
from voe.domain.models import NAME_PATTERN
from voe.errors import Conflict

router = APIRouter(tags=["tokens"])


class TokenRequest(BaseModel):
    name: str = Field(pattern=NAME_PATTERN)
    role: Literal["viewer", "operator", "admin"]


@router.post("/tokens", status_code=201, summary="Create a token; its value is shown once")
def create_token(request: Request, body: TokenRequest, who: Admin) -> dict:
    services = request.app.state.services
    token = services.tokens.create(body.name, body.role)
    services.events.append("info", "audit", f"token {body.name!r} ({body.role}) created by {who.name}")
    return {"name": body.name, "role": body.role, "token": token}


@router.get("/tokens", summary="List tokens (never their values)")
def list_tokens(request: Request, _: Admin) -> list[dict]:
    return request.app.state.services.tokens.list()


@router.delete("/tokens/{name}", status_code=204, summary="Revoke a token")
def revoke_token(request: Request, name: str, who: Admin) -> Response:
    if name == who.name:  # the last admin token could lock every admin out
        raise Conflict(f"token {name!r} cannot revoke itself; revoke it with another admin token", ("name",))
    services = request.app.state.services
    services.tokens.revoke(name)
    services.events.append("warning", "audit", f"token {name!r} revoked by {who.name}")
    return Response(status_code=204)


@router.get("/whoami", summary="The caller's token name and role")
def whoami(who: Anyone) -> dict:
    return {"name": who.name, "role": who.role, "persona": who.persona}
