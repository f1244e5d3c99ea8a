"""Bearer-token authentication and role checks, as FastAPI dependencies.
Wrong tokens are counted per source address (``auth_failures``)."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from voe.api.auth_failures import AuthFailures
from voe.cause import CAUSE
from voe.store.tokens import Principal, Role

bearer = HTTPBearer(auto_error=False, description="a voe token: `voe token create`, or <data dir>/admin-token")


async def principal(request: Request,
                    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    """async: a token just used is known without a store read (see
    ``tokens.KNOWN_FOR``), and a worker thread per request cost more than
    the rare read it would spare the event loop."""
    token = creds.credentials if creds else request.query_params.get("access_token")
    # EventSource cannot send headers, so the console's live stream passes the
    # token as a query parameter; everything else uses the header.
    if not token:
        raise HTTPException(401, "no token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    tokens, failures = request.app.state.services.tokens, request.app.state.auth_failures
    source = request.client.host if request.client else "unknown"
    if failures.blocked_for(source):
        who = tokens.recall(token)
        if who is None:
            refuse_if_blocked(request, failures)
    else:
        who = tokens.authenticate(token)
    if who is None:
        if not tokens.ever_issued(token):
            failures.failed(source)
        raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    cause = CAUSE.get()
    if cause is not None:
        cause.by = who.name
    return who


def refuse_if_blocked(request: Request, failures: AuthFailures) -> str:
    """The request's source address, or 429 while it sent too many wrong tokens."""
    source = request.client.host if request.client else "unknown"
    wait = failures.blocked_for(source)
    if wait:
        raise HTTPException(429, f"too many wrong tokens from {source}: try again in {math.ceil(wait)} s",
                            headers={"Retry-After": str(math.ceil(wait))})
    return source


def require(role: Role):
    # async: FastAPI runs a plain function dependency on a worker thread,
    # and this one only compares two roles (one hop less per request; an
    # agent's beats are most of the API's requests)
    async def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if not who.may(role):
            raise HTTPException(403, f"this needs the {role} role; token {who.name!r} has {who.role}")
        return who

    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Anyone = Annotated[Principal, Depends(principal)]
