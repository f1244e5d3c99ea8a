"""Every call needs a token; roles limit writes; secrets never leave sealed."""

from __future__ import annotations

import stat

from fastapi.testclient import TestClient

from voe.api.app import create_app

HOST = {"name": "h1", "bmc": {"address": "127.0.0.1", "port": 6230, "username": "admin",
                              "password": "s3cret-BMC-pw"},
        "cpus": 4, "memory": "8GiB", "nics": [{"name": "eth0", "mac": "00:0b:cd:00:00:01"}],
        "hypervisor": {"driver": "libvirt", "url": "qemu:///system", "password": "hv-Pa55-word",
                       "cpus": 4, "memory": "4GiB"}}


def test_no_token_is_401(services):
    with TestClient(create_app(services)) as c:
        r = c.get("/api/v1/networks")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.get("/api/v1/networks", headers={"Authorization": "Bearer voe_nope"}).status_code == 401


def test_a_source_guessing_tokens_is_refused_for_a_while_and_right_tokens_are_not(services, admin_token):
    from voe.api.auth_failures import ALLOWED

    app = create_app(services)
    right = {"Authorization": f"Bearer {admin_token}"}
    with TestClient(app, client=("192.0.2.7", 50000)) as guesser, TestClient(app, client=("192.0.2.8", 50000)) as other:
        assert guesser.get("/api/v1/whoami", headers=right).status_code == 200  # a client at work
        for _ in range(5):  # a missing token guesses nothing, and is not counted
            assert guesser.get("/api/v1/whoami").status_code == 401
        for i in range(ALLOWED):
            assert guesser.get("/api/v1/whoami", headers={"Authorization": f"Bearer voe_guess{i}"}).status_code == 401
        refused = guesser.get("/api/v1/whoami", headers={"Authorization": "Bearer voe_guess-again"})
        assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= 60
        assert "192.0.2.7" in refused.json()["detail"]
        assert guesser.get("/api/v1/whoami", headers=right).status_code == 200  # its tokens at work keep working
        assert other.get("/api/v1/whoami", headers={"Authorization": "Bearer voe_guess0"}).status_code == 401


def test_a_revoked_credential_is_not_a_guess(api, services, admin_token):
    """Agents of ended incarnations beat with revoked credentials, often
    many behind one address: they must not get that address refused."""
    from voe.api.auth_failures import ALLOWED

    revoked = api.post("/api/v1/tokens", json={"name": "old", "role": "viewer"}).json()["token"]
    assert api.delete("/api/v1/tokens/old").status_code == 204
    with TestClient(create_app(services), client=("192.0.2.9", 50000)) as c:
        for _ in range(ALLOWED + 5):
            assert c.get("/api/v1/whoami", headers={"Authorization": f"Bearer {revoked}"}).status_code == 401


def test_viewer_cannot_write_operator_cannot_change_inventory(api, services):
    viewer = api.post("/api/v1/tokens", json={"name": "ro", "role": "viewer"}).json()["token"]
    operator = api.post("/api/v1/tokens", json={"name": "op", "role": "operator"}).json()["token"]
    net = {"name": "front", "vlan": 100, "subnet": "10.0.1.0/24"}
    with TestClient(create_app(services)) as c:
        r = c.post("/api/v1/networks", json=net, headers={"Authorization": f"Bearer {viewer}"})
        assert r.status_code == 403
        assert r.json()["detail"] == "this needs the admin role; token 'ro' has viewer"
        assert c.post("/api/v1/networks", json=net, headers={"Authorization": f"Bearer {operator}"}).status_code == 403
        assert c.get("/api/v1/networks", headers={"Authorization": f"Bearer {viewer}"}).status_code == 200


def test_revoked_token_stops_working_at_once(api, services):
    """Even one just used (the controller keeps a token it found valid for
    a few seconds without reading the store again)."""
    tok = api.post("/api/v1/tokens", json={"name": "ci", "role": "viewer"}).json()["token"]
    with TestClient(create_app(services)) as c:
        assert c.get("/api/v1/whoami", headers={"Authorization": f"Bearer {tok}"}).status_code == 200
        assert api.delete("/api/v1/tokens/ci").status_code == 204
        assert c.get("/api/v1/whoami", headers={"Authorization": f"Bearer {tok}"}).status_code == 401


def test_admin_token_file_is_0600(services):
    mode = stat.S_IMODE((services.data_dir / "admin-token").stat().st_mode)
    assert mode == 0o600


def test_tokens_are_stored_hashed(api, services, admin_token):
    from sqlalchemy import select

    from voe.store import schema

    with services.engine.connect() as c:
        digests = [r.digest for r in c.execute(select(schema.tokens))]
    assert admin_token not in digests and len(digests[0]) == 64


def test_passwords_never_leave_the_store_in_clear(api, services, caplog):
    assert api.post("/api/v1/hosts", json=HOST).status_code == 201
    outputs = [
        api.get("/api/v1/hosts/h1").text,
        api.get("/api/v1/hosts").text,
        api.get("/api/v1/export").text,
        api.get("/api/v1/events/log").text,
        api.patch("/api/v1/hosts/h1", json={"cpus": 8}).text,
    ]
    shown = api.get("/api/v1/hosts/h1").json()
    assert shown["bmc"]["password_set"] is True and "password" not in shown["bmc"]
    for secret in ("s3cret-BMC-pw", "hv-Pa55-word"):
        for text in outputs:
            assert secret not in text
        assert secret not in caplog.text
        if services.engine.dialect.name == "sqlite":
            for f in services.data_dir.glob("voe.sqlite*"):
                assert secret.encode() not in f.read_bytes()
    # ... yet the store still holds them for the drivers
    host = services.inventory.load().by_name("hosts")["h1"]
    assert host.bmc.password == "s3cret-BMC-pw" and host.hypervisor.password == "hv-Pa55-word"


def test_a_file_without_the_password_keeps_the_stored_one(api, services):
    api.post("/api/v1/hosts", json=HOST)
    doc = api.get("/api/v1/export").json()
    r = api.post("/api/v1/apply", json={"document": doc, "dry_run": True})
    assert r.json() == {"changed": False, "changes": []}
    doc["hosts"][0]["bmc"]["password"] = "new-one"
    r = api.post("/api/v1/apply", json={"document": doc})
    assert r.json()["changes"] == [{"op": "update", "kind": "hosts", "name": "h1", "fields": ["bmc.password"]}]
    assert services.inventory.load().by_name("hosts")["h1"].bmc.password == "new-one"


def test_a_token_cannot_revoke_itself(api):
    r = api.delete("/api/v1/tokens/admin")
    assert r.status_code == 409 and "another admin token" in r.json()["detail"]
    assert api.get("/api/v1/whoami").status_code == 200
