"""Where a persona cloned from a template is served from: a tree by a
storage service that serves NFS roots, a disk image by one that serves
iSCSI LUNs (the datacenter of examples/kvm-lab.yaml has one of each), the
LUN backed by the clone itself; and a refusal that names what is missing."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import EXAMPLE
from voe.cli.yamlfile import DatacenterFile

KVM_LAB = EXAMPLE.with_name("kvm-lab.yaml")
PERSONA = {"vnics": [{"network": "storage", "boot": True}]}


def templates(api, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("template\n")
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    for name, source in (("linux", tree), ("san", disk)):
        r = api.post("/api/v1/templates", json={"name": name, "source": str(source)})
        assert r.status_code == 201, r.text


def test_a_tree_is_an_nfs_root_of_the_nfs_server_and_a_disk_a_lun_of_the_iscsi_one(api, tmp_path):
    assert api.post("/api/v1/apply", json={"document": DatacenterFile(KVM_LAB).data()}).status_code == 200
    templates(api, tmp_path)
    assert api.post("/api/v1/templates/linux/clone", json={"persona": {"name": "web", **PERSONA}}).status_code == 201
    assert api.post("/api/v1/templates/san/clone", json={"persona": {"name": "db", **PERSONA}}).status_code == 201
    web = api.get("/api/v1/personas/web").json()["image"]
    db = api.get("/api/v1/personas/db").json()
    db_disk = api.get("/api/v1/personas/db/image").json()["path"]
    assert web["nfs_root"].startswith("10.77.0.1:/")  # nas, ganesha
    assert db["boot"] == "iscsi" and db["image"]["target_portal"] == "10.77.0.3:3260"  # san, tgt
    assert db["image"]["disk"] == db_disk and Path(db_disk).is_file()  # the LUN is the clone


def test_a_disk_with_no_iscsi_server_is_refused_naming_the_drivers_that_serve_one(api, tmp_path):
    doc = DatacenterFile(KVM_LAB).data()
    doc["hosts"] = [h for h in doc["hosts"] if h["name"] != "san"]
    assert api.post("/api/v1/apply", json={"document": doc}).status_code == 200
    templates(api, tmp_path)
    r = api.post("/api/v1/templates/san/clone", json={"persona": {"name": "db", **PERSONA}})
    assert r.status_code == 409
    assert "serves iscsi" in r.text and "tgt" in r.text and "ganesha" not in r.json()["detail"].split("(")[1]
    assert api.get("/api/v1/personas/db").status_code == 404
    assert api.get("/api/v1/personas/db/image").status_code == 404  # a refused persona leaves no image
