"""A persona made from a template boots in the lab from its own clone, with
its own identity, while the template stays as it was; capture turns it
back into a template without what made it one machine."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from voe.images import samples


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        h.update(str(f.relative_to(root)).encode())
        if f.is_file() and not f.is_symlink():
            h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture
def apache(stack, tmp_path):
    if not samples.BUSYBOX.exists():
        pytest.skip("busybox-static is not installed (scripts/setup.sh installs it)")
    tree = tmp_path / "apache"
    samples.build_tree(tree, "apache", samples.ROLES["apache"][1])
    r = stack.cli("template", "create", "apache", "--from", str(tree), "--description", "Apache web server")
    assert r.returncode == 0, r.stdout + r.stderr
    return stack.http.get("/api/v1/templates/apache").json()[-1]


def test_a_persona_from_a_template_boots_its_own_clone(stack, apache):
    assert apache["version"] == 1 and apache["kind"] == "tree" and apache["boot"] == "linux-nfs"
    r = stack.cli("persona", "create", "web-9", "--from", "apache", "--network", "storage", "--network", "front")
    assert r.returncode == 0 and "persona web-9 from apache v1: copy" in r.stdout, r.stdout + r.stderr
    image = stack.http.get("/api/v1/personas/web-9/image").json()
    persona = stack.http.get("/api/v1/personas/web-9").json()
    assert persona["image"]["template"] == "apache" and persona["image"]["template_version"] == 1
    assert persona["image"]["nfs_root"] == f"10.0.3.5:{image['path']}"
    root = Path(image["path"])
    template_root = root.parents[2] / "templates" / "apache" / "v1" / "root"
    before = tree_digest(template_root)

    assert stack.http.post("/api/v1/personas/web-9/start", json={}).status_code == 202
    stack.wait("web-9", lambda s: s["state"] == "running", timeout=60)
    # the lab booted the persona's OS in its clone, as an NFS root: the agent wrote its network there
    assert (root / "etc/hostname").read_text() == "web-9\n"
    assert list((root / "etc/systemd/network").glob("*.network"))
    assert (root / "etc/machine-id").read_text().strip() not in ("", (template_root / "etc/machine-id").read_text().strip())
    assert (template_root / "etc/hostname").read_text() == "apache-template\n"
    assert tree_digest(template_root) == before  # booting wrote nothing into the template
    grants = stack.lab_json("truth")["storage"]["dl380"]["grants"]
    storage_ip = next(v["ip"] for v in persona["vnics"] if v["network"] == "storage")
    assert {"persona": "web-9", "path": str(root), "initiator": storage_ip} in [
        {k: g[k] for k in ("persona", "path", "initiator")} for g in grants]

    r = stack.cli("persona", "capture", "web-9", "--as", "apache-web9")
    assert r.returncode == 0 and "/etc/machine-id (emptied)" in r.stdout and "/etc/hostname (emptied)" in r.stdout
    captured = root.parents[2] / "templates" / "apache-web9" / "v1" / "root"
    assert (captured / "etc/machine-id").read_text() == "" and (captured / "etc/systemd/network").is_dir()


def test_a_refused_persona_leaves_no_image_behind(stack, apache):
    r = stack.http.post("/api/v1/templates/apache/clone", json={"persona": {"name": "web-8", "vnics": [{"network": "nosuch"}]}})
    assert r.status_code == 422 and "nosuch" in r.text
    assert stack.http.get("/api/v1/personas/web-8/image").status_code == 404
    r = stack.http.post("/api/v1/templates/apache/clone", json={"persona": {"name": "web-8", "prefer": ["vm"]}})
    assert r.status_code == 422, r.text  # a field the persona does not have: named, not a server error
    assert any(p["loc"][-1] == "prefer" for p in r.json()["detail"]), r.json()
    assert stack.http.get("/api/v1/personas/web-8/image").status_code == 404
    r = stack.http.post("/api/v1/templates/apache/clone", json={"persona": {"name": "web-8", "vnics": [{"network": "front"}]}})
    assert r.status_code == 201 and r.json()["image"]["template"] == "apache"


def test_an_image_outlives_its_persona_until_deleted_on_purpose(stack, apache):
    assert stack.http.post("/api/v1/templates/apache/clone", json={"persona": {"name": "web-7"}}).status_code == 201
    r = stack.http.delete("/api/v1/personas/web-7/image")
    assert r.status_code == 409 and "still exists" in r.json()["detail"]
    assert stack.http.delete("/api/v1/personas/web-7").status_code == 204
    assert stack.http.get("/api/v1/personas/web-7/image").status_code == 200  # a disk is not lost by a typo
    assert stack.http.delete("/api/v1/personas/web-7/image").status_code == 204
    assert stack.http.get("/api/v1/personas/web-7/image").status_code == 404
    assert stack.http.delete("/api/v1/templates/apache").status_code == 204  # no persona is based on it now
