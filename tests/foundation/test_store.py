"""The store itself: migrations match the tables, lists page and filter."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from voe.store.schema import metadata


def test_migrations_create_exactly_the_declared_schema(services):
    with services.engine.connect() as c:
        diffs = compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), metadata)
    assert diffs == []


def test_lists_paginate_and_filter(api):
    api.post("/api/v1/networks", json={"name": "front", "vlan": 100, "subnet": "10.0.0.0/16"})
    api.post("/api/v1/networks", json={"name": "back", "vlan": 200, "subnet": "10.1.0.0/16"})
    for i in range(25):
        api.post("/api/v1/personas", json={"name": f"web-{i:02d}", "image": {"nfs_root": "n:/x"},
                                           "labels": {"tier": "web" if i % 2 else "db"},
                                           "vnics": [{"network": "front" if i < 20 else "back"}]})
    page = api.get("/api/v1/personas", params={"limit": 10, "offset": 20}).json()
    assert page["total"] == 25 and [p["name"] for p in page["items"]] == [f"web-{i}" for i in range(20, 25)]
    assert api.get("/api/v1/personas", params={"label": "tier=db"}).json()["total"] == 13
    assert api.get("/api/v1/personas", params={"network": "back"}).json()["total"] == 5
    assert api.get("/api/v1/personas", params={"q": "web-1"}).json()["total"] == 10
    assert api.get("/api/v1/personas", params={"limit": 0}).status_code == 422


def test_openapi_document_lists_every_kind(api):
    doc = api.get("/api/v1/openapi.json").json()
    for kind in ("networks", "switches", "hosts", "personas", "groups"):
        assert f"/api/v1/{kind}" in doc["paths"] and f"/api/v1/{kind}/{{name}}" in doc["paths"]
    assert "Persona" in doc["components"]["schemas"]


def test_inventory_changes_are_in_the_event_log(api):
    api.post("/api/v1/networks", json={"name": "front", "vlan": 100, "subnet": "10.0.0.0/16"})
    api.post("/api/v1/personas", json={"name": "a", "image": {"nfs_root": "n:/x"}, "vnics": [{"network": "front"}]})
    events = api.get("/api/v1/events/log", params={"persona": "a"}).json()
    assert [e["message"] for e in events] == ["create persona a"]
    assert events[0]["data"]["by"] == "admin"
