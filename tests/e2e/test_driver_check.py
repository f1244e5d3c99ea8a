"""`voe driver check` through the real CLI against the lab: what answers,
and what fails, named."""

from __future__ import annotations

import json


def test_a_host_with_ipmi_and_a_hypervisor_answers_then_its_bmc_goes(stack):
    r = stack.cli("driver", "check", "dl360-1", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    checks = {c["concern"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["power"]["ok"] and "power" in checks["power"]["seen"]
    assert checks["hypervisor"]["ok"]
    stack.lab("fault", "dl360-1", "bmc-down")
    r = stack.cli("driver", "check", "dl360-1")
    assert r.returncode == 1
    assert "FAILED power (ipmi): dl360-1:" in r.stdout and "ok    hypervisor (lab)" in r.stdout


def test_a_redfish_host_and_a_switch(stack):
    r = stack.cli("driver", "check", "pe2800")
    assert r.returncode == 0 and "power (redfish)" in r.stdout, r.stdout + r.stderr
    assert stack.cli("driver", "check", "sw1").returncode == 0
    stack.lab("fault", "sw1", "down")
    r = stack.cli("driver", "check", "sw1")
    assert r.returncode == 1 and "FAILED switch (snmp): sw1:" in r.stdout
    r = stack.cli("driver", "check", "nosuch")
    assert r.returncode != 0 and "'nosuch' does not exist" in r.stdout + r.stderr
