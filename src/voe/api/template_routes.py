"""Persona images over HTTP: the template library, cloning a template into
a new persona (a fresh identity, its own copy of the image), and capture
("condense") of a persona's image into a new template version."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, ValidationError

from voe.api.auth import Admin, Viewer
from voe.api.inventory_routes import _put
from voe.domain import inventory as inv_rules
from voe.domain.inventory import Inventory
from voe.domain.models import Persona
from voe.drivers import registry
from voe.errors import Conflict, InvalidInventory, NotFound
from voe.images.capture import copy_server_root

router = APIRouter(tags=["images"])


class TemplateRequest(BaseModel):
    name: str
    source: str = Field(description="a directory (NFS root tree) or disk image (raw, qcow2) on the controller's "
                                    "host, or with from_host, the path of a server's root on that server")
    from_host: str | None = Field(default=None, description="copy a live server's root over SSH/rsync (capture)")
    description: str = ""
    boot: Literal["linux-nfs", "iscsi"] | None = None
    clean: bool = Field(default=False, description="remove machine-specific files (host keys, machine-id, leases)")


class CloneRequest(BaseModel):
    persona: dict[str, Any] = Field(description="the new persona's fields (name, cpus, memory, vnics, ...) but its image")
    version: int | None = Field(default=None, description="a template version; the latest when absent")
    ssh_keys: list[str] = Field(default_factory=list, description="authorized_keys written into the clone")


class CaptureRequest(BaseModel):
    as_template: str
    description: str = ""


def _images(request: Request):
    return request.app.state.services.images


@router.get("/templates", summary="The template library (latest version of each)")
def list_templates(request: Request, _: Viewer) -> list[dict]:
    store = _images(request)
    return [{**asdict(t), "versions": len(store.versions(t.name))} for t in store.templates()]


@router.get("/templates/{name}", summary="Every version of one template")
def show_template(request: Request, name: str, _: Viewer) -> list[dict]:
    versions = _images(request).versions(name)
    if not versions:
        raise NotFound("template", name)
    return [asdict(v) for v in versions]


@router.post("/templates", status_code=201, summary="A new template (or a new version of one) from a tree or image")
def create_template(request: Request, body: TemplateRequest, who: Admin) -> dict:
    store = _images(request)
    if body.from_host:
        staging = Path(tempfile.mkdtemp(prefix=".capture-", dir=store.root))
        try:
            try:
                copy_server_root(body.from_host, body.source, staging)
            except RuntimeError as e:
                raise Conflict(str(e), ("body", "from_host")) from None
            t, cleaned = store.create_template(body.name, staging, body.description or f"captured from "
                                               f"{body.from_host}:{body.source}", body.boot, clean=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    else:
        t, cleaned = store.create_template(body.name, Path(body.source), body.description, body.boot, body.clean)
    request.app.state.services.events.append("info", "image", f"{who.name} created template {t.name} v{t.version} "
                                             f"from {body.source}", data={"cleaned": cleaned})
    return {"template": asdict(t), "cleaned": cleaned}


@router.delete("/templates/{name}", status_code=204, summary="Delete a template no persona is based on")
def delete_template(request: Request, name: str, who: Admin) -> None:
    _images(request).delete_template(name)
    request.app.state.services.events.append("warning", "image", f"{who.name} deleted template {name}")


def _image_spec(inv: Inventory, persona: str, template, path: str) -> dict:
    """Where the persona's clone is served from: the first storage host of
    the inventory whose service serves the clone's kind (an NFS root for a
    tree, an iSCSI LUN for a disk image)."""
    protocol = "nfs" if template.kind == "tree" else "iscsi"
    server = next((h for h in inv.hosts if h.storage is not None
                   and protocol in registry.load("storage", h.storage.driver).protocols), None)  # type: ignore[attr-defined]
    if server is None:
        raise Conflict(f"no host declares a storage service that serves {protocol} to serve this persona's image; "
                       f"add `storage:` with a driver that does ({_drivers_serving(protocol)}) to the host that "
                       "exports voe's image store", ("persona", "image"))
    address = server.storage.serves[0]  # type: ignore[union-attr]
    spec: dict[str, Any] = {"template": template.name, "template_version": template.version}
    if protocol == "nfs":
        return {**spec, "nfs_root": f"{address}:{path}"}
    return {**spec, "target_iqn": f"iqn.2026-11.io.voe:{persona}", "target_portal": f"{address}:3260", "lun": 1,
            "disk": path}


def _drivers_serving(protocol: str) -> str:
    return ", ".join(name for name in registry.available("storage")
                     if protocol in registry.load("storage", name).protocols)  # type: ignore[attr-defined]


@router.post("/templates/{name}/clone", status_code=201, summary="Create a persona from a template")
def clone_template(request: Request, name: str, body: CloneRequest, who: Admin) -> dict:
    services = request.app.state.services
    persona = body.persona.get("name")
    if not persona:
        raise Conflict("the new persona needs a name", ("persona", "name"))
    if "image" in body.persona:
        raise Conflict("a persona cloned from a template gets the clone as its image; leave image out",
                       ("persona", "image"))
    if persona in services.inventory.load().by_name("personas"):
        raise Conflict(f"persona {persona!r} exists", ("persona", "name"))
    versions = _images(request).versions(name)
    if not versions:
        raise NotFound("template", name)
    image = _images(request).clone(name, persona, body.version, body.ssh_keys)
    try:
        template = next(v for v in versions if v.version == image.version)
        spec = {**body.persona, "boot": template.boot,
                "image": _image_spec(services.inventory.load(), persona, template, image.path)}
        try:
            persona_spec = Persona.model_validate(spec)
        except ValidationError as e:
            raise InvalidInventory(inv_rules.problems_from(e.errors(include_url=False), Persona,
                                                           ("body", "persona"))) from None
        created = _put(request, "personas", persona_spec, must_be_new=True)
    except Exception:
        _images(request).delete_persona_image(persona)  # a refused persona leaves no orphan image
        raise
    services.events.append("info", "image", f"{who.name} cloned {name} v{image.version} into {persona} "
                           f"({image.method}, {image.bytes_written} bytes written)", persona=persona)
    return {"persona": created, "image": asdict(image)}


@router.get("/personas/{name}/image", summary="The persona's image: template, version, path, clone method")
def persona_image(request: Request, name: str, _: Viewer) -> dict:
    image = _images(request).persona_image(name)
    if image is None:
        raise NotFound("persona image", name)
    return asdict(image)


@router.delete("/personas/{name}/image", status_code=204, summary="Delete the image of a persona that was deleted")
def delete_persona_image(request: Request, name: str, who: Admin) -> None:
    if name in request.app.state.services.inventory.load().by_name("personas"):
        raise Conflict(f"persona {name!r} still exists; delete it first (its image is its disk)", ("name",))
    if _images(request).persona_image(name) is None:
        raise NotFound("persona image", name)
    _images(request).delete_persona_image(name)
    request.app.state.services.events.append("warning", "image", f"{who.name} deleted the image of {name}",
                                             persona=name)


@router.post("/personas/{name}/capture", status_code=201, summary="Turn a persona's image into a template version")
def capture(request: Request, name: str, body: CaptureRequest, who: Admin) -> dict:
    t, cleaned = _images(request).capture(name, body.as_template, body.description)
    request.app.state.services.events.append("info", "image", f"{who.name} captured {name} as template "
                                             f"{t.name} v{t.version}", persona=name, data={"cleaned": cleaned})
    return {"template": asdict(t), "cleaned": cleaned}
