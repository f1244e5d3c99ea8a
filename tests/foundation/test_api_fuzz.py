"""Schemathesis against the controller's own OpenAPI document: every
operation, with an admin token, over the review's datacenter, with valid
requests and with invalid ones, on both stores. The API must answer no
request with a server error, and every answer must be documented (its
status, its content type, its body's schema). The run is derandomized, so
each run of ``./test`` tries the same cases; its figures are printed."""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install -e '.[test]')")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis import checks as C  # noqa: E402

from harness import load  # noqa: E402
from voe.api.app import API, create_app  # noqa: E402

EXAMPLES = int(os.environ.get("VOE_FUZZ_EXAMPLES", "30"))
"""Cases per operation and mode: some 4 000 in about 25 s a store. A longer
run finds more (``VOE_FUZZ_EXAMPLES=300``)."""
CHECKS = [C.not_a_server_error, C.status_code_conformance, C.response_schema_conformance,
          C.content_type_conformance, C.response_headers_conformance]
SSH_COPY = "it copies a live server's root over SSH from a host the request names: fuzzed names reach out of this machine"
LEFT_OUT = {("GET", f"{API}/events"): "the live event stream never ends, so no case of it would return",
            ("POST", f"{API}/templates"): SSH_COPY, ("POST", f"{API}/personas/{{name}}/capture"): SSH_COPY}


def fuzz(op, mode: GenerationMode, auth: dict) -> tuple[int, str | None]:
    """Cases tried on ``op`` in ``mode``, and what failed (None: nothing)."""
    tried = 0

    @given(case=op.as_strategy(mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        nonlocal tried
        tried += 1
        case.validate_response(case.call(headers=auth), checks=CHECKS, headers=auth)

    try:
        run()
    except Unsatisfiable:
        pass  # no invalid request exists for this operation (no parameters, no body)
    except BaseException as e:  # schemathesis' FailureGroup, with every failure and how to reproduce it
        return tried, f"{mode.value} {op.method.upper()} {op.path}:\n{e}"
    return tried, None


def test_fuzzed_requests_get_no_server_error_and_only_documented_answers(services, admin_token, capsys):
    auth = {"Authorization": f"Bearer {admin_token}"}
    app = create_app(services)
    with TestClient(app, headers=auth) as client:
        assert client.post(f"{API}/apply", json={"document": load()}).status_code == 200  # names to find
    schema = schemathesis.openapi.from_asgi(f"{API}/openapi.json", app)
    operations = [r.ok() for r in schema.get_all_operations()]
    tried: Counter[str] = Counter()
    failures: list[str] = []
    began = time.monotonic()
    for op in operations:
        if (op.method.upper(), op.path) in LEFT_OUT:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            cases, failure = fuzz(op, mode, auth)
            tried[mode.value] += cases
            if failure:
                failures.append(failure)
    took = time.monotonic() - began
    with capsys.disabled():
        print(f"\nschemathesis ({services.engine.dialect.name}): {len(operations) - len(LEFT_OUT)} of "
              f"{len(operations)} operations, {tried['positive']} valid and {tried['negative']} invalid cases "
              f"in {took:.1f} s: {len(failures)} failing")
    assert not failures, "\n\n".join(failures)
