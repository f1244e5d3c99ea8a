"""The SNMP driver reading a switch simulated by snmpsim, a third-party
agent that answers from a recorded walk (an .snmprec file) — another peer
than voe's own lab, so the driver's PortList bit order and VLAN logic are
checked against data voe did not produce."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness import free_port, stop_process
from voe.domain.ports import PortConfig
from voe.drivers.switch.snmp import SnmpSettings, SnmpSwitch

RESPONDER = Path(sys.executable).parent / "snmpsim-command-responder"

# A 24-port switch as a walk records it. VLAN 100: ports 1 and 3 tagged;
# VLAN 200: port 1 tagged, port 2 untagged (access); VLAN 300: port 1
# untagged (its native VLAN). Port 3 is admin down. PortList octets: bit 7
# (0x80) of the first octet is port 1.
RECORD = """1.3.6.1.2.1.1.1.0|4|HP ProCurve 2824 (recorded)
1.3.6.1.2.1.2.1.0|2|24
1.3.6.1.2.1.2.2.1.7.1|2|1
1.3.6.1.2.1.2.2.1.7.2|2|1
1.3.6.1.2.1.2.2.1.7.3|2|2
1.3.6.1.2.1.17.7.1.4.3.1.2.100|4x|a00000
1.3.6.1.2.1.17.7.1.4.3.1.2.200|4x|c00000
1.3.6.1.2.1.17.7.1.4.3.1.2.300|4x|800000
1.3.6.1.2.1.17.7.1.4.3.1.4.100|4x|000000
1.3.6.1.2.1.17.7.1.4.3.1.4.200|4x|400000
1.3.6.1.2.1.17.7.1.4.3.1.4.300|4x|800000
1.3.6.1.2.1.17.7.1.4.3.1.5.100|2|1
1.3.6.1.2.1.17.7.1.4.3.1.5.200|2|1
1.3.6.1.2.1.17.7.1.4.3.1.5.300|2|1
1.3.6.1.2.1.17.7.1.4.5.1.1.1|66|300
1.3.6.1.2.1.17.7.1.4.5.1.1.2|66|200
1.3.6.1.2.1.17.7.1.4.5.1.1.3|66|1
"""


@pytest.fixture
def snmpsim():
    if not RESPONDER.exists() or shutil.which("snmpget") is None:
        pytest.skip("snmpsim or net-snmp is not installed (pip install -e '.[test]'; scripts/setup.sh)")
    work = Path(tempfile.mkdtemp(prefix="voe-snmpsim-"))
    (work / "data").mkdir()
    (work / "data" / "procurve.snmprec").write_text(RECORD)  # the community is the file's name
    port = free_port(socket.SOCK_DGRAM)
    # as root, snmpsim insists on switching user; this Python (under /root)
    # is readable by root only, so it "switches" to root
    drop = ["--process-user=root", "--process-group=root"] if os.geteuid() == 0 else []
    proc = subprocess.Popen([str(RESPONDER), f"--data-dir={work / 'data'}", f"--agent-udpv4-endpoint=127.0.0.1:{port}",
                             f"--cache-dir={work / 'cache'}", *drop], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while subprocess.run(["snmpget", "-v2c", "-c", "procurve", "-t", "0.5", "-r", "0", f"127.0.0.1:{port}",
                          "1.3.6.1.2.1.1.1.0"], capture_output=True).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail("snmpsim did not answer")
        time.sleep(0.3)
    yield port
    stop_process(proc, grace=5)
    shutil.rmtree(work, ignore_errors=True)


def test_the_driver_reads_a_recorded_switch(snmpsim):
    sw = SnmpSwitch("procurve", SnmpSettings(address="127.0.0.1", port=snmpsim, community="procurve", timeout=3), {})
    ports = {p: sw.read_port(p) for p in ("1", "2", "3")}
    assert ports["1"] == PortConfig.trunk({100, 200}, native_vlan=300)
    assert ports["2"] == PortConfig.access(200)
    assert ports["3"] == PortConfig.trunk({100}, admin_up=False)
    assert sw.vlans() == {100, 200, 300}
    assert "HP ProCurve 2824 (recorded)" in sw.check()
