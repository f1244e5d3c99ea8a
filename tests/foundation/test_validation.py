"""Bad input is refused with a message naming the field and the fix, on both
stores, and nothing is written."""

from __future__ import annotations

NET = {"name": "front", "vlan": 100, "subnet": "10.0.1.0/24", "gateway": "10.0.1.1"}


def persona(name: str, **vnic) -> dict:
    return {"name": name, "image": {"nfs_root": "nfs:/export/" + name}, "vnics": [{"network": "front", **vnic}]}


def problems(r) -> list[tuple[str, str]]:
    return [(".".join(str(p) for p in d["loc"]), d["msg"]) for d in r.json()["detail"]]


def test_vlan_0_and_4095_are_refused(api):
    for vlan in (0, 4095):
        r = api.post("/api/v1/networks", json={**NET, "vlan": vlan})
        assert r.status_code == 422
        assert problems(r) == [("body.vlan", f"VLAN {vlan} is outside 1-4094 (0 is priority tagging, 4095 is reserved)")]
    assert api.get("/api/v1/networks").json()["total"] == 0


def test_duplicate_vlan_is_a_conflict(api):
    assert api.post("/api/v1/networks", json=NET).status_code == 201
    r = api.post("/api/v1/networks", json={**NET, "name": "back", "subnet": "10.0.2.0/24", "gateway": None})
    assert r.status_code == 409
    assert r.json() == {"detail": "VLAN 100 is already used by network 'front'", "loc": ["body", "vlan"]}


def test_duplicate_mac_is_a_conflict(api):
    api.post("/api/v1/networks", json=NET)
    assert api.post("/api/v1/personas", json=persona("a", mac="02:56:4f:00:01:01")).status_code == 201
    r = api.post("/api/v1/personas", json=persona("b", mac="02:56:4F:00:01:01"))
    assert r.status_code == 409
    assert r.json()["detail"] == "MAC 02:56:4f:00:01:01 is already used by persona a vNIC 0"
    assert [p["name"] for p in api.get("/api/v1/personas").json()["items"]] == ["a"]


def test_duplicate_ip_is_a_conflict(api):
    api.post("/api/v1/networks", json=NET)
    api.post("/api/v1/personas", json=persona("a", ip="10.0.1.20"))
    r = api.post("/api/v1/personas", json=persona("b", ip="10.0.1.20"))
    assert r.status_code == 409
    assert r.json()["detail"] == "IP 10.0.1.20 on 'front' is already used by persona a"


def test_ip_outside_the_subnet(api):
    api.post("/api/v1/networks", json=NET)
    r = api.post("/api/v1/personas", json=persona("a", ip="10.9.0.5"))
    assert r.status_code == 422
    assert problems(r) == [("body.vnics.0.ip", "10.9.0.5 is outside subnet 10.0.1.0/24 of network 'front'")]


def test_unknown_network_suggests_the_near_name(api):
    api.post("/api/v1/networks", json=NET)
    r = api.post("/api/v1/personas", json={**persona("a"), "vnics": [{"network": "fornt"}]})
    assert r.status_code == 422
    assert problems(r) == [("body.vnics.0.network", "unknown network 'fornt'; did you mean 'front'?")]


def test_dependency_cycle_is_named(api):
    api.post("/api/v1/networks", json=NET)
    for n in "abc":
        api.post("/api/v1/personas", json=persona(n))
    r = api.post("/api/v1/groups", json={"name": "app", "members": ["a", "b", "c"],
                                         "depends": {"a": ["b"], "b": ["c"], "c": ["a"]}})
    assert r.status_code == 422
    assert problems(r) == [("body.depends", "dependency cycle: a -> b -> c -> a")]


def test_unknown_field_names_the_field_and_the_likely_fix(api):
    r = api.post("/api/v1/networks", json={**NET, "vlna": 3})
    assert r.status_code == 422
    assert problems(r) == [("body.vlna", "unknown field 'vlna'; did you mean 'vlan'? "
                                         "(known: description, dns, gateway, name, subnet, subnet6, vlan)")]


def test_deleting_a_network_in_use_is_refused(api):
    api.post("/api/v1/networks", json=NET)
    api.post("/api/v1/personas", json=persona("a"))
    r = api.delete("/api/v1/networks/front")
    assert r.status_code == 409
    assert r.json()["detail"] == "network 'front' is used by persona a; change those first"
    assert api.get("/api/v1/networks/front").status_code == 200


def test_a_failed_apply_writes_nothing(api):
    """One bad object in a document: the good ones before it are not written."""
    doc = {"networks": [NET, {"name": "back", "vlan": 200, "subnet": "10.0.2.0/24"}],
           "personas": [persona("ok"), {**persona("bad"), "vnics": [{"network": "nowhere"}]}]}
    r = api.post("/api/v1/apply", json={"document": doc})
    assert r.status_code == 422
    assert problems(r) == [("personas.bad.vnics.0.network", "unknown network 'nowhere'; known: back, front")]
    assert api.get("/api/v1/networks").json()["total"] == 0
    assert api.get("/api/v1/personas").json()["total"] == 0


def test_blank_identity_is_filled_and_kept(api):
    api.post("/api/v1/networks", json=NET)
    made = api.post("/api/v1/personas", json=persona("a")).json()
    vnic = made["vnics"][0]
    assert vnic["mac"].startswith("02:56:4f:") and vnic["ip"] == "10.0.1.11"
    assert made["san"]["initiator_iqn"] == "iqn.2026-11.io.voe:persona:a"
    again = api.put("/api/v1/personas/a", json={**persona("a"), "cpus": 2}).json()
    assert again["vnics"][0] == vnic and again["cpus"] == 2


def test_an_unknown_field_spelt_with_a_capital_is_named_with_the_fix(api):
    r = api.post("/api/v1/apply", json={"document": {"Networks": []}})
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"].startswith("unknown field 'Networks'; did you mean 'networks'?")


def test_a_nul_character_the_store_cannot_hold_is_a_422_with_the_fix(api, services):
    """PostgreSQL cannot store \\u0000 in text (SQLite can): a 422, never a 500."""
    r = api.post("/api/v1/switches", json={"name": "sw9", "address": "10.0.0.9", "settings": {"note": "a\u0000b"}})
    if services.engine.dialect.name == "postgresql":
        assert r.status_code == 422 and "\\u0000" in r.json()["detail"][0]["msg"]
    else:
        assert r.status_code == 201
