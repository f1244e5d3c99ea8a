"""``voe backup`` / ``voe restore``: the whole store to a file and back, on
both stores and across them; consistent while writers run; secrets stay
sealed; a newer schema, a truncated file, a store not empty or another key
are refused with nothing written."""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from tests.conftest import EXAMPLE, new_store
from voe.cli.main import app
from voe.cli.yamlfile import DatacenterFile
from voe.controller.services import Services
from voe.errors import VoeError
from voe.store import schema
from voe.store.backup import TABLES, BackupRefused, backup_chunks, read_file, restore
from voe.store.events import EventQuery
from voe.store.secrets import Sealer, load_key
from voe.store.time import now

KEY = "6e0Qm3p8oQ0qgk2VnM3vYp0yXcRj2cQ2kq3pYp8nVtE="  # a Fernet key both stores share in these tests


@pytest.fixture
def source(api, services):
    """The review's datacenter applied through the API, an incarnation and some events."""
    assert api.post("/api/v1/apply", json={"document": DatacenterFile(EXAMPLE).data()}).status_code == 200
    api.post("/api/v1/tokens", json={"name": "ops", "role": "operator"})
    with services.engine.begin() as c:
        c.execute(insert(schema.incarnations).values(persona="oracle", generation=1, kind="physical", host="dl360-2",
                                                     boot_mac="00:0b:cd:02:00:01", why="fits", started_at=now()))
    for i in range(5):
        services.events.append("info", "transition", f"event {i}", persona="oracle")
    return services


@pytest.fixture(autouse=True)
def shared_key(monkeypatch):
    monkeypatch.setenv("VOE_SECRET_KEY", KEY)


def write_backup(services, path: Path) -> Path:
    path.write_bytes(b"".join(backup_chunks(services.engine)))
    return path


def counts(engine) -> dict[str, int]:
    with engine.connect() as c:
        return {t.name: c.execute(select(func.count()).select_from(t)).scalar() for t in TABLES}


@pytest.mark.parametrize("target_kind", ["sqlite", "postgresql"])
def test_a_backup_restores_whole_into_either_store(source, tmp_path, target_kind):
    backup = write_backup(source, tmp_path / "voe.jsonl.gz")
    with new_store(target_kind) as url:
        target = Services.open(tmp_path / "restored", url)
        try:
            restored = restore(target.engine, lambda: read_file(backup), target.inventory.sealer)
            assert restored == counts(source.engine) == counts(target.engine)
            before, after = source.inventory.load(), target.inventory.load()
            assert after == before  # secrets included: sealed in the file, unsealed with the shared key
            assert after.by_name("hosts")["dl360-1"].bmc.password == before.by_name("hosts")["dl360-1"].bmc.password
            assert target.tokens.authenticate((source.data_dir / "admin-token").read_text().strip()).role == "admin"
            old = source.events.query(EventQuery(limit=1000))
            assert target.events.query(EventQuery(limit=1000)) == old
            new_id = target.events.append("info", "test", "after the restore")
            assert new_id > old[-1]["id"]  # the id sequence continues after the restored rows
        finally:
            target.close()


def test_the_file_keeps_secrets_sealed(source, tmp_path):
    text = gzip.decompress(write_backup(source, tmp_path / "b.gz").read_bytes()).decode()
    assert "voe-lab" not in text and '"sealed"' in text  # the lab's BMC password, only sealed


def test_a_backup_taken_while_the_controller_writes_is_one_snapshot(source, tmp_path):
    """A writer adds an incarnation and its event in one transaction, over
    and over, while the backup reads table after table: every pair is in
    the backup whole, or not at all."""
    with source.engine.begin() as c:  # enough rows that the backup takes a while
        c.execute(insert(schema.events), [dict(at=now(), severity="debug", kind="filler", message="x")] * 20000)
    stop, written = threading.Event(), []

    def writer():
        while not stop.is_set():
            name = f"p{len(written)}"
            with source.engine.begin() as c:
                c.execute(insert(schema.incarnations).values(persona=name, generation=1, kind="vm", host="h",
                                                             boot_mac="02:00:00:00:00:01", why="-", started_at=now()))
                c.execute(insert(schema.events).values(at=now(), severity="info", kind="pair", message=name))
            written.append(name)

    t = threading.Thread(target=writer)
    t.start()
    try:
        while len(written) < 5:  # pairs before the backup, then more during it
            stop.wait(0.01)
        lines = [json.loads(x) for x in gzip.decompress(b"".join(backup_chunks(source.engine))).splitlines()]
    finally:
        stop.set()
        t.join(10)
    incarnations = {x["row"]["persona"] for x in lines if x.get("table") == "incarnations"} - {"oracle"}
    pairs = {x["row"]["message"] for x in lines if x.get("table") == "events" and x["row"]["kind"] == "pair"}
    assert incarnations == pairs and len(pairs) >= 5
    assert len(written) > len(pairs)  # the writer went on while the backup read


def test_restore_refuses_a_store_that_is_not_empty_unless_replace(source, tmp_path):
    backup = write_backup(source, tmp_path / "b.gz")
    with pytest.raises(BackupRefused, match="not empty.*--replace"):
        restore(source.engine, lambda: read_file(backup), source.inventory.sealer)
    source.events.append("info", "test", "after the backup")
    restore(source.engine, lambda: read_file(backup), source.inventory.sealer, replace=True)
    assert "after the backup" not in [e["message"] for e in source.events.query(EventQuery(limit=1000))]


def rewrite(backup: Path, path: Path, change) -> Path:
    lines = [json.loads(x) for x in gzip.decompress(backup.read_bytes()).splitlines()]
    path.write_bytes(gzip.compress("".join(json.dumps(x) + "\n" for x in change(lines)).encode()))
    return path


@pytest.mark.parametrize("change, refusal", [
    (lambda lines: [{**lines[0], "schema": "0099"}, *lines[1:]], "unknown to this voe.*newer voe"),
    (lambda lines: lines[:-3], "truncated"),
    (lambda lines: lines[1:], "not a voe backup"),
])
def test_restore_refuses_a_file_it_cannot_trust_and_writes_nothing(source, tmp_path, change, refusal):
    bad = rewrite(write_backup(source, tmp_path / "b.gz"), tmp_path / "bad.gz", change)
    with new_store("sqlite"):
        target = Services.open(tmp_path / "target")
        try:
            before = counts(target.engine)
            with pytest.raises(BackupRefused, match=refusal):
                restore(target.engine, lambda: read_file(bad), target.inventory.sealer)
            assert counts(target.engine) == before
        finally:
            target.close()


def test_restore_refuses_secrets_sealed_with_another_key(source, tmp_path, monkeypatch):
    backup = write_backup(source, tmp_path / "b.gz")
    monkeypatch.delenv("VOE_SECRET_KEY")
    target = Services.open(tmp_path / "target")  # makes a key of its own
    try:
        with pytest.raises(VoeError, match="VOE_SECRET_KEY"):
            restore(target.engine, lambda: read_file(backup), Sealer(load_key(target.data_dir)))
        assert counts(target.engine)["inventory_objects"] == 0
    finally:
        target.close()


def test_backup_and_restore_through_the_cli(live_controller, source, tmp_path, monkeypatch):
    url, token = live_controller
    monkeypatch.setenv("VOE_URL", url)
    monkeypatch.setenv("VOE_TOKEN", token)
    runner = CliRunner()
    file = tmp_path / "voe.jsonl.gz"
    taken = runner.invoke(app, ["backup", str(file)], catch_exceptions=False)
    assert taken.exit_code == 0, taken.output
    assert file.stat().st_mode & 0o777 == 0o600 and "inventory_objects" in taken.output
    monkeypatch.delenv("VOE_DATABASE_URL", raising=False)
    restored = runner.invoke(app, ["--data-dir", str(tmp_path / "new"), "restore", str(file)], catch_exceptions=False)
    assert restored.exit_code == 0, restored.output
    again = runner.invoke(app, ["--data-dir", str(tmp_path / "new"), "restore", str(file)], catch_exceptions=False)
    assert again.exit_code == 1 and "not empty" in again.output and "nothing was changed" in again.output
    target = Services.open(tmp_path / "new")
    try:
        assert target.inventory.load() == source.inventory.load()
    finally:
        target.close()
