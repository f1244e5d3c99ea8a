"""TLS by default: ``voe serve`` makes a CA and a server certificate in its
data dir and serves the API, the console and the agent service over HTTPS
only. Its one plain-HTTP listener, the boot port, serves boot scripts and
the CA's certificate and nothing else. The CLI trusts the data dir's CA
with no flag, and names the CA it was given when that one did not sign
the controller's certificate."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.foundation.served import voe_serve
from voe.tls import ca_pin, default_names, ensure


@pytest.fixture
def served(tmp_path):
    with voe_serve(tmp_path) as s:
        yield s


def voe(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "voe.cli.main", *args], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("listener", ["api", "agents"])
def test_the_api_and_agent_listeners_refuse_plain_http(served, listener):
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{served[listener]}/api/v1/personas", timeout=5)


def test_the_boot_port_serves_boot_files_and_nothing_else(served):
    boot = f"http://127.0.0.1:{served['boot']}"
    ca = httpx.get(f"{boot}/boot/ca.pem")
    assert ca.status_code == 200 and ca.content == (served["data"] / "ca.pem").read_bytes()
    assert httpx.get(f"{boot}/boot/ipxe/02:00:00:00:00:99").text.startswith("#!ipxe\necho voe: no persona")
    token = (served["data"] / "admin-token").read_text().strip()
    for path in ("/api/v1/personas", "/api/v1/agent/config", "/api/v1/openapi.json", "/metrics", "/"):
        assert httpx.get(f"{boot}{path}", headers={"Authorization": f"Bearer {token}"}).status_code == 404, path


def test_the_cli_trusts_the_data_dirs_ca_with_no_flag_and_names_a_wrong_one(served, tmp_path):
    env = served["env"]
    listed = voe(env, "token", "list")
    assert listed.returncode == 0, listed.stderr
    assert "admin" in listed.stdout

    other = ensure(tmp_path / "elsewhere", default_names("127.0.0.1"))  # another controller's CA
    assert ca_pin(other.ca) != ca_pin(served["data"] / "ca.pem")
    refused = voe(env, "--ca", str(other.ca), "token", "list")
    assert refused.returncode == 1
    assert str(other.ca) in refused.stderr and "did not sign" in refused.stderr


def test_a_certificate_is_made_once_and_kept_across_restarts(tmp_path):
    first = ensure(tmp_path, default_names("127.0.0.1"))
    pem = first.ca.read_bytes(), first.cert.read_bytes()
    again = ensure(tmp_path, default_names("127.0.0.1"))
    assert (again.ca.read_bytes(), again.cert.read_bytes()) == pem
    assert oct(first.key.stat().st_mode & 0o777) == "0o600"
    # a new address to serve on: a new server certificate from the same CA
    moved = ensure(tmp_path, default_names("127.0.0.1", "voe.example.net"))
    assert moved.ca.read_bytes() == pem[0] and moved.cert.read_bytes() != pem[1]
