"""`voe driver check` through the real CLI against the lab: what answers,
and what fails, named."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def voe(stack, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VOE_URL": stack.url, "VOE_TOKEN": stack.token}
    return subprocess.run([sys.executable, "-m", "voe.cli.main", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_a_host_with_ipmi_and_a_hypervisor_answers_then_its_bmc_goes(stack):
    r = voe(stack, "driver", "check", "dl360-1", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    checks = {c["concern"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["power"]["ok"] and "power" in checks["power"]["seen"]
    assert checks["hypervisor"]["ok"]
    stack.lab("fault", "dl360-1", "bmc-down")
    r = voe(stack, "driver", "check", "dl360-1")
    assert r.returncode == 1
    assert "FAILED power (ipmi): dl360-1:" in r.stdout and "ok    hypervisor (lab)" in r.stdout


def test_a_redfish_host_and_a_switch(stack):
    r = voe(stack, "driver", "check", "pe2800")
    assert r.returncode == 0 and "power (redfish)" in r.stdout, r.stdout + r.stderr
    assert voe(stack, "driver", "check", "sw1").returncode == 0
    stack.lab("fault", "sw1", "down")
    r = voe(stack, "driver", "check", "sw1")
    assert r.returncode == 1 and "FAILED switch (snmp): sw1:" in r.stdout
    r = voe(stack, "driver", "check", "nosuch")
    assert r.returncode != 0 and "'nosuch' does not exist" in r.stdout + r.stderr
