"""What agents and booting machines call: the exchange of a boot script's
bootstrap token for the agent's credential, their configuration,
heartbeats, and (on the boot port too) the per-MAC iPXE script, the kernel
and initrd that script loads, and the CA agents pin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field

from voe.api.auth import bearer, principal
from voe.domain import wiring
from voe.domain.lifecycle import State
from voe.drivers.boot.boot_files import boot_file
from voe.drivers.boot.ipxe import INITRD, KERNEL, nfs_root_path, spread
from voe.store.tokens import Principal

router = APIRouter(prefix="/agent", tags=["agent"])
boot_router = APIRouter(tags=["boot"])


async def agent(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """async: a role check needs no worker thread (see ``auth.require``)."""
    if who.role != "agent" or not who.persona:
        raise HTTPException(403, "only a persona's agent credential may call this")
    return who


Agent = Annotated[Principal, Depends(agent)]


class Heartbeat(BaseModel):
    generation: int = Field(ge=1)
    ready: bool = False
    stopping: bool = False
    uptime: float | None = None
    addresses: dict[str, str] = Field(default_factory=dict)
    detail: str | None = None
    wwpn: str | None = None


class Exchange(BaseModel):
    persona: str = Field(min_length=1, max_length=63)
    generation: int = Field(ge=1)


@router.post("/credential", summary="A boot script's one-use bootstrap token, exchanged for the agent's credential",
             responses={401: {"description": "the bootstrap token is unknown, used, expired or another incarnation's"}})
def credential(request: Request, body: Exchange,
               creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> dict:
    """Never refused for its source's guesses (``auth_failures``): a booting
    machine behind the same address as a guesser must still boot."""
    token = creds.credentials if creds else None
    tokens = request.app.state.services.tokens
    issued = tokens.redeem(token, body.persona, body.generation) if token else None
    if issued is None:
        if token and not tokens.ever_issued(token):
            request.app.state.auth_failures.failed(request.client.host if request.client else "unknown")
        raise HTTPException(401, f"no credential for {body.persona} generation {body.generation}: this bootstrap "
                                 "token is unknown, used already, expired or another incarnation's",
                            headers={"WWW-Authenticate": "Bearer"})
    return {"token": issued}


@router.get("/config", summary="The calling persona's configuration on its current machine")
def config(request: Request, who: Agent, persona: str | None = None) -> dict:
    if persona is not None and persona != who.persona:
        raise HTTPException(403, f"this credential belongs to {who.persona}; it cannot read {persona}")
    rt = request.app.state.runtime
    inc = rt.current(who.persona)
    if inc is None or inc.ended_at is not None:
        raise HTTPException(409, {"detail": "stale", "current": inc.generation if inc else None})
    request.app.state.record_boot_stage(who.persona, inc.generation, "config")
    inv = request.app.state.services.inventory.load()
    p = inv.by_name("personas")[who.persona]
    host = inv.by_name("hosts")[inc.host]
    pace = request.app.state.pace
    return {
        "persona": p.name,
        "generation": inc.generation,
        "hostname": p.name,
        "machine": {"kind": inc.kind, "host": inc.host, "vm": inc.vm},
        **wiring.agent_network(inv, p, inc.kind, host, inc.boot_mac),
        "san": {"initiator_iqn": p.san.initiator_iqn, "wwpn": p.san.wwpn},
        "heartbeat": {"interval": pace.interval, "lease_ttl": pace.lease() if p.policy.watchdog else None},
        "app_check": p.app_check,
        "controllers": spread(request.app.state.agent_urls(), p.name),
    }


@router.post("/heartbeat", summary="An agent's heartbeat; the answer says continue, stop or stale")
def heartbeat(request: Request, body: Heartbeat, who: Agent) -> dict:
    rt = request.app.state.runtime
    pace = request.app.state.pace
    interval, lease = pace.interval, pace.lease()  # read once: the reconciler may move the pace meanwhile
    standing = rt.standing(who.persona)
    if standing.generation != body.generation or standing.ended:
        return {"action": "stale", "interval": interval, "lease_expires_in": None}
    request.app.state.record_beat(who.persona, body.generation, body.ready, body.stopping,
                                  body.model_dump(include={"addresses", "uptime", "detail", "wwpn"}), told=interval)
    action = "stop" if standing.state == State.STOPPING else "continue"
    return {"action": action, "interval": interval, "lease_expires_in": lease,
            "controllers": spread(request.app.state.agent_urls(), who.persona)}


@boot_router.get("/boot/ca.pem", summary="The CA that signs the controller's certificate (agents check its pin)",
                 response_class=Response, responses={404: {"description": "the controller runs without TLS"}})
def ca_certificate(request: Request) -> Response:
    pem = request.app.state.ca_pem
    if pem is None:
        raise HTTPException(404, "this controller serves no CA of its own")
    return Response(pem, media_type="application/x-pem-file")


@boot_router.get("/boot/ipxe/{mac}", response_class=PlainTextResponse, summary="The iPXE script for a booting MAC")
def ipxe_script(request: Request, mac: str) -> PlainTextResponse:
    target = request.app.state.runtime.boot_target(mac.lower().replace("-", ":"))
    if target is None:
        return PlainTextResponse("#!ipxe\necho voe: no persona is being started on this MAC\nexit 1\n", status_code=404)
    request.app.state.record_boot_stage(target.persona, target.generation, "script")
    return PlainTextResponse(target.script)


@boot_router.get("/boot/files/{mac}/{name}", summary="The kernel or initrd of the root a booting MAC mounts",
                 response_class=FileResponse, responses={404: {"description": "nothing boots there, or no such file"}})
def boot_files(request: Request, mac: str, name: str) -> FileResponse:
    """From the persona's own root (its ``/boot``), so a kernel upgraded
    inside the persona is the one it boots next time."""
    if name not in (KERNEL, INITRD):
        raise HTTPException(404, f"no boot file {name!r}: {KERNEL} or {INITRD}")
    target = request.app.state.runtime.boot_target(mac.lower().replace("-", ":"))
    if target is None:
        raise HTTPException(404, f"no persona is being started on {mac}")
    root = nfs_root_path(target.script)
    if root is None:
        raise HTTPException(404, f"{target.persona} boots from a SAN on {mac}: there is no kernel to fetch")
    path = boot_file(root, name)
    if path is None:
        raise HTTPException(404, f"the root of {target.persona} ({root}) holds no boot/{name}-* on this controller")
    if name == KERNEL:
        request.app.state.record_boot_stage(target.persona, target.generation, "kernel")
    return FileResponse(path, media_type="application/octet-stream")
