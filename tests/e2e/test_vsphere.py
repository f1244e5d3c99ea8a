"""VMware vSphere in the lab: an ESX host whose vCenter is VMware's own
simulator (vcsim), driven by voe's vsphere driver over the real SOAP API;
each VM the simulator powers on network-boots as a lab machine. A persona
moves between the lab's hypervisor and the vSphere host keeping its MACs
and addresses, and the review's web tier runs on vSphere."""

from __future__ import annotations

import json
import socket

import pytest

from harness import free_port
from tests.e2e.conftest import running_stack
from tests.e2e.test_failover import no_double_runs, start
from voe.drivers.hypervisor.vsphere import VsphereHypervisor, VsphereSettings
from voe.lab import vcsim

WEBS = ("web-1", "web-2", "web-3")


def with_esx(doc: dict) -> None:
    doc["hosts"].append({
        "name": "esx1", "model": "Dell PowerEdge R750 running ESXi",
        "bmc": {"driver": "ipmi", "address": "127.0.0.1", "port": free_port(socket.SOCK_DGRAM), "username": "admin",
                "password": "voe-lab"},
        "cpus": 32, "memory": "128GiB", "local_disk": True,
        "nics": [{"name": "vmnic0", "mac": "00:50:56:01:00:01", "switch": "sw1", "port": "16"},
                 {"name": "vmnic1", "mac": "00:50:56:01:00:02", "switch": "sw2", "port": "16"}],
        "hypervisor": {"driver": "vsphere", "url": f"http://127.0.0.1:{free_port()}/sdk",
                       "username": "administrator", "password": "voe-lab", "cpus": 32, "memory": "96GiB",
                       "settings": {"esx_host": vcsim.FIRST_HOST, "verify_tls": False}},
        "fencing": ["hypervisor", "hypervisor-host-bmc", "fabric"]})


def esx_only(doc: dict) -> None:
    """The review's hypervisor host retired: the VMs have vSphere alone."""
    with_esx(doc)
    next(h for h in doc["hosts"] if h["name"] == "dl360-1")["schedulable"] = False


@pytest.fixture
def needs_vcsim():
    try:
        vcsim.binary()
    except vcsim.VcsimMissing as e:
        pytest.skip(str(e))


def esx_driver(stack) -> VsphereHypervisor:
    hv = next(h for h in stack.doc["hosts"] if h["name"] == "esx1")["hypervisor"]
    return VsphereHypervisor("esx1", VsphereSettings(url=hv["url"], username=hv["username"], password=hv["password"],
                                                     esx_host=vcsim.FIRST_HOST, verify_tls=False))


def reach(stack, a: str, b: str) -> dict:
    return json.loads(stack.lab("reach", a, b, "--json", check=False).stdout)


def moved(stack, name: str, before: dict, **where) -> dict:
    assert stack.http.post(f"/api/v1/personas/{name}/move", json=where).status_code == 202
    return stack.wait(name, lambda s: s["generation"] > before["generation"] and s["state"] == "running", 60)


def test_a_persona_moves_to_vsphere_and_back_keeping_its_macs_and_addresses(needs_vcsim, tmp_path):
    with running_stack(tmp_path, edit=with_esx) as stack:
        first = start(stack, "web-1", to="dl360-1")["web-1"]
        on_esx = moved(stack, "web-1", first, to="esx1")
        assert (on_esx["machine"]["kind"], on_esx["machine"]["host"]) == ("vm", "esx1")
        assert on_esx["agent"]["addresses"] == first["agent"]["addresses"]
        esx = esx_driver(stack)
        try:
            vm = esx.spec("web-1")
        finally:
            esx.close()
        web = stack.http.get("/api/v1/personas/web-1").json()
        assert vm.macs == tuple(v["mac"] for v in web["vnics"])
        assert (vm.networks, vm.vlans) == (("voe-vlan-100", "voe-vlan-200"), (100, 200))
        r = stack.cli("driver", "check", "esx1", "--json")  # through the stored, sealed credentials
        assert r.returncode == 0, r.stdout + r.stderr
        checks = {c["concern"]: c for c in json.loads(r.stdout)["checks"]}
        assert checks["hypervisor"]["ok"] and f"host {vcsim.FIRST_HOST} (connected), 1 VMs" in \
            checks["hypervisor"]["seen"], checks
        back = moved(stack, "web-1", on_esx, to="dl360-1")
        assert back["machine"]["host"] == "dl360-1" and back["agent"]["addresses"] == first["agent"]["addresses"]
        no_double_runs(stack)


def test_the_review_web_tier_runs_on_vsphere(needs_vcsim, tmp_path):
    with running_stack(tmp_path, edit=esx_only) as stack:
        assert stack.http.post("/api/v1/groups/sample-app/start", json={}).status_code == 202
        running = {n: stack.wait(n, lambda s: s["state"] == "running", 90) for n in (*WEBS, "lb", "bea-1")}
        assert all(running[n]["machine"] == {**running[n]["machine"], "kind": "vm", "host": "esx1"}
                   for n in (*WEBS, "lb")), running
        assert reach(stack, "web-1", "bea-1")["reach"] is True
        assert reach(stack, "lb", "oracle")["reach"] is False
        no_double_runs(stack)
