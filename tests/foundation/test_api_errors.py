"""The API answers bad input with a 422 that names the field and the fix,
and an unexpected failure with a JSON 500 carrying a request id, never a
traceback; nothing is written either way."""

from __future__ import annotations

import logging

from fastapi.testclient import TestClient

from voe.api.app import create_app


def test_an_apply_body_that_is_not_json_is_a_422_naming_the_body(api):
    r = api.post("/api/v1/apply", content=b"\xff\xfe not json", headers={"Content-Type": "text/plain"})
    assert r.status_code == 422
    [problem] = r.json()["detail"]
    assert problem["loc"] == ["body"] and "JSON object" in problem["msg"]
    assert api.get("/api/v1/hosts").json()["total"] == 0


def test_an_apply_body_that_is_a_list_is_a_422_saying_what_it_should_be(api):
    r = api.post("/api/v1/apply", json=[1, 2])
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"] == "the request body must be a JSON object, sent with Content-Type: application/json"


def test_malformed_json_is_a_422_with_the_parser_s_reason(api):
    r = api.post("/api/v1/apply", content=b'{"document": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


def test_an_unexpected_failure_is_a_json_500_with_a_request_id_the_log_names(services, admin_token, monkeypatch,
                                                                               caplog):
    def broken():
        raise RuntimeError("the store's disk is gone")

    monkeypatch.setattr(services.inventory, "load", broken)
    with TestClient(create_app(services), headers={"Authorization": f"Bearer {admin_token}"},
                    raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR, "voe.api.app"):
        r = client.get("/api/v1/export")
    assert r.status_code == 500
    body = r.json()
    assert set(body) == {"detail", "request_id"} and "Traceback" not in r.text and "disk is gone" not in r.text
    assert any(body["request_id"] in rec.getMessage() and rec.exc_info for rec in caplog.records)


def test_the_500_names_the_request_id_the_caller_sent_and_the_answer_carries_it(services, admin_token, monkeypatch):
    monkeypatch.setattr(services.inventory, "load", lambda: 1 / 0)
    with TestClient(create_app(services), headers={"Authorization": f"Bearer {admin_token}"},
                    raise_server_exceptions=False) as client:
        r = client.get("/api/v1/export", headers={"X-Request-ID": "ticket-4711"})
    assert r.status_code == 500
    assert r.json()["request_id"] == "ticket-4711" == r.headers["X-Request-ID"]
