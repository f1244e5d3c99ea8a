"""The store itself: migrations match the tables, lists page and filter."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from voe.store.schema import metadata


def test_migrations_create_exactly_the_declared_schema(services):
    with services.engine.connect() as c:
        diffs = compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), metadata)
    assert diffs == []


def test_an_inventory_write_by_another_controller_is_read_at_once(services, store_url, tmp_path):
    """A controller reuses the inventory it loaded last while the store's
    inventory version is unchanged; a write by another controller on the
    same store (PostgreSQL scale-out, or a CLI on the SQLite file) bumps
    it, so the next read sees the write, and an unchanged store costs no
    reload."""
    from voe.controller.services import Services

    first = services.inventory
    first.write(lambda inv: inv.model_copy(update={"networks": []}))
    before = first.load()
    assert first.load() is before  # nothing changed: the same object, not a reload

    other = Services.open(services.data_dir if store_url is None else tmp_path / "other", store_url)
    try:
        other.inventory.write(lambda inv: inv.model_validate(
            {**inv.model_dump(), "networks": [{"name": "front", "vlan": 100, "subnet": "10.0.0.0/16"}]}))
    finally:
        other.close()
    after = first.load()
    assert [n.name for n in after.networks] == ["front"]
    assert first.load() is after


def test_a_controller_reads_only_what_anothers_writes_changed(services, store_url, tmp_path, monkeypatch):
    """After another controller's writes (created, changed, deleted, and
    deleted then created again), a controller's next read gives what a
    whole read would, reading only the objects those writes touched; one
    whose inventory is older than the deletions kept reads it whole."""
    from voe.controller.services import Services
    from voe.store import inventory_store

    def net(name, vlan):
        return {"name": name, "vlan": vlan, "subnet": f"10.{vlan % 200}.0.0/16"}

    def networks(*nets):
        return lambda inv: inv.model_validate({**inv.model_dump(), "networks": list(nets)})

    first = services.inventory
    first.write(networks(net("a", 100), net("b", 101), net("c", 102)))
    first.load()
    other = Services.open(services.data_dir if store_url is None else tmp_path / "other", store_url)
    try:
        other.inventory.write(networks(net("a", 100), net("b", 111), net("d", 103)))  # b changed, c gone, d new
        other.inventory.write(networks(net("a", 100), net("d", 103)))  # b gone
        other.inventory.write(networks(net("a", 100), net("b", 121), net("d", 103)))  # b back

        def whole(conn):
            raise AssertionError("a few writes behind, a controller reads only what they changed")
        monkeypatch.setattr(first, "_load", whole)
        seen = first.load()
        monkeypatch.undo()
        with other.inventory.reader.connect() as c:
            assert seen == other.inventory._load(c)
        assert [(n.name, n.vlan) for n in seen.networks] == [("a", 100), ("b", 121), ("d", 103)]
        assert seen.by_name("networks")["b"].vlan == 121

        monkeypatch.setattr(inventory_store, "KEPT_VERSIONS", 1)
        other.inventory.write(networks(net("a", 100)))
        other.inventory.write(networks(net("a", 100), net("e", 104)))
        loads = []
        monkeypatch.setattr(first, "_load", lambda conn: loads.append(1) or type(first)._load(first, conn))
        assert [n.name for n in first.load().networks] == ["a", "e"]
        assert loads == [1]  # two writes behind, one kept: read whole
    finally:
        other.close()


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


def test_a_beat_that_only_says_time_passed_is_not_a_store_write(services):
    """Agents beat several times a second each: the row is rewritten when
    what they say changes (their addresses, readiness), not for their
    uptime, which changes at every beat."""
    from sqlalchemy import select

    from voe.store import schema

    runtime = services.runtime

    def stored() -> dict:
        runtime.beats.flush()  # as the flusher does, every HEARTBEAT_FLUSH_EVERY
        with services.engine.connect() as c:
            return dict(c.execute(select(schema.heartbeats)).one()._mapping)

    report = {"uptime": 1.0, "addresses": {"front": "10.0.0.5/24"}, "detail": "network configured", "wwpn": None}
    runtime.beats.record("web-1", 1, True, False, report)
    first = stored()
    runtime.beats.record("web-1", 1, True, False, {**report, "uptime": 1.3})
    assert stored() == first
    assert runtime.beats.of("web-1")["report"]["uptime"] == 1.3  # yet the controller knows the newest beat
    moved = {**report, "uptime": 1.6, "addresses": {"front": "10.0.0.6/24"}}
    runtime.beats.record("web-1", 1, True, False, moved)
    assert stored()["report"] == moved


def test_one_flush_writes_each_personas_own_beat_whether_its_row_is_new_or_stored(services):
    """A flush writes all the beats due at once (new rows and rows to
    update, each in one statement): every row must still get its own."""
    from sqlalchemy import select

    from voe.store import schema

    runtime = services.runtime
    runtime.beats.record("a", 1, True, False, {"addresses": {"front": "10.0.0.1/24"}})
    runtime.beats.flush()
    for name, generation, ready in (("a", 2, False), ("b", 5, True), ("c", 7, False)):
        runtime.beats.record(name, generation, ready, False, {"addresses": {"front": f"10.0.0.{generation}/24"}})
    runtime.beats.flush()
    with services.engine.connect() as c:
        rows = {r.persona: (r.generation, r.ready, r.report["addresses"]["front"])
                for r in c.execute(select(schema.heartbeats))}
    assert rows == {"a": (2, False, "10.0.0.2/24"), "b": (5, True, "10.0.0.5/24"), "c": (7, False, "10.0.0.7/24")}


def test_concurrent_writers_all_commit_and_a_failed_one_frees_the_write_lock(tmp_path):
    """SQLite: writers queue in the process (see ``db._Writers``); every
    one commits, and one that fails rolls back and lets the next in."""
    import threading

    from sqlalchemy import text

    from voe.store.db import open_engine

    engine = open_engine(f"sqlite:///{tmp_path / 'w.sqlite'}")
    with engine.begin() as c:
        c.execute(text("CREATE TABLE t (n INTEGER)"))

    def write(k: int) -> None:
        for i in range(20):
            try:
                with engine.begin() as c:
                    c.execute(text("INSERT INTO t VALUES (:n)"), {"n": k * 100 + i})
                    if i % 5 == 4:
                        raise ValueError("this one rolls back")
            except ValueError:
                pass

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM t")).scalar() == 8 * 16
    assert not engine.dialect.voe_writers.lock.locked()
    engine.dispose()


def test_writes_committed_together_each_stand_or_fail_alone_and_are_durable_on_return(services):
    """Group commit (``store.group_commit``): of many small writes from many
    threads, every one that succeeds is committed before its caller goes
    on (another connection reads it at once), and one that fails is undone
    alone and raises in its own caller; on both stores."""
    import threading

    from sqlalchemy import insert, select

    from voe.store import schema
    committer = services.events.commits
    assert committer.batched == (services.engine.dialect.name == "sqlite")
    seen_at_return: dict[str, bool] = {}
    failed: list[str] = []

    def write(k: int) -> None:
        for i in range(10):
            name = f"t{k}-{i}"

            def work(c, name=name, i=i):
                c.execute(insert(schema.intents).values(persona=name, move_kind="vm"))
                if i % 4 == 3:
                    raise ValueError(f"{name} refused after its write")
                return name

            try:
                assert committer.run(work) == name
            except ValueError:
                failed.append(name)
                continue
            with services.engine.connect() as c:  # a connection of its own, as a status read has
                seen_at_return[name] = c.execute(select(schema.intents.c.persona).where(
                    schema.intents.c.persona == name)).scalar() == name

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen_at_return) == 8 * 8 and all(seen_at_return.values())
    assert len(failed) == 8 * 2
    with services.engine.connect() as c:
        stored = set(c.execute(select(schema.intents.c.persona)).scalars())
    assert stored == set(seen_at_return)  # the refused ones left nothing behind
