"""The error answers of every operation, documented in the OpenAPI so that
a client (or a fuzzer) knows each status it may meet: who may call (401,
403, 429), what may be missing (404), in conflict (409) or refused (400,
422), and which device failed (502). A 500 is never documented: it is a bug,
answered with a request id (see ``app``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from voe.api.auth import principal


class Problem(BaseModel):
    """Every error's body: what is wrong and, when known, where."""

    detail: Any
    loc: list[str | int] | None = None
    device: str | None = None
    operation: str | None = None


def _answer(why: str) -> dict:
    return {"model": Problem, "description": why}


AUTHENTICATED = {
    401: _answer("no token, or an unknown, revoked or spent one"),
    403: _answer("the token's role (or persona) does not allow this"),
    429: _answer("too many wrong tokens from this address: try again after Retry-After seconds"),
}
NAMED = {404: _answer("no such object, or one the request names does not exist")}
WRITE = {
    404: NAMED[404],
    409: _answer("the request conflicts with the current state; `loc` names the field"),
    502: _answer("a device (BMC, switch, hypervisor, storage) failed; `device` and `operation` name it"),
}
REFUSED = {422: _answer("the request is malformed; each problem names its field and the fix")}
UNREADABLE = {400: _answer("the body could not be read at all (not UTF-8 text)")}
DEVICES = {502: WRITE[502]}
STALE = {409: _answer("this agent's incarnation is no longer current")}


def document_errors(router: APIRouter) -> None:
    """Add to each of ``router``'s operations the error answers it can give,
    by what it is: authenticated or not, naming an object in its path,
    writing, reaching devices or serving agents."""
    for route in router.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        errors = dict(REFUSED)
        if _depends_on(route.dependant, principal):
            errors |= AUTHENTICATED
        if route.body_field is not None:
            errors |= UNREADABLE
        if "{" in route.path:
            errors |= NAMED
        if route.methods - {"GET", "HEAD"}:
            errors |= WRITE
        if {"drivers", "fabric"} & set(route.tags):
            errors |= DEVICES
        if "agent" in route.tags:
            errors |= STALE
        route.responses = {**errors, **route.responses}


def _depends_on(dependant: Dependant, call) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)
