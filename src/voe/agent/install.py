"""Put the agent into a persona image root (an NFS root, say): its code, a
launcher and its systemd unit, enabled. Used by ``voe agent install`` and by
the sample library's builder."""

from __future__ import annotations

import compileall
import shutil
from pathlib import Path

AGENT_PACKAGE = Path(__file__).parent
UNIT = AGENT_PACKAGE / "voe-agent.service"
PROBE_UNIT = AGENT_PACKAGE / "voe-probe.service"
PROBE_RULE = """# voe's network probe, started when the machine offers its port (voe.agent.probe)
SUBSYSTEM=="virtio-ports", ATTR{name}=="io.voe.probe", TAG+="systemd", ENV{SYSTEMD_WANTS}+="voe-probe.service"
"""
LAUNCHER = """#!/usr/bin/env python3
# voe-agent, installed by `voe agent install`: the standard library is all it needs
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib" / "voe-agent"))  # /usr/bin -> /usr/lib
from voe.agent.main import main
main()
"""


def install_into(root: Path) -> list[Path]:
    """The agent's files under ``root``; returns the paths written."""
    lib = root / "usr" / "lib" / "voe-agent" / "voe"
    if lib.exists():
        shutil.rmtree(lib)
    shutil.copytree(AGENT_PACKAGE, lib / "agent", ignore=shutil.ignore_patterns("__pycache__", "*.service"))
    (lib / "__init__.py").write_text('"""voe, as far as a persona needs it: the agent."""\n')
    # compiled now, not at every boot of a persona whose root is read-only or on NFS
    compileall.compile_dir(lib, quiet=1, invalidation_mode=compileall.py_compile.PycInvalidationMode.UNCHECKED_HASH)
    launcher = root / "usr" / "bin" / "voe-agent"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(LAUNCHER)
    launcher.chmod(0o755)
    unit = root / "etc" / "systemd" / "system" / "voe-agent.service"
    unit.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(UNIT, unit)
    wants = unit.parent / "multi-user.target.wants" / "voe-agent.service"
    wants.parent.mkdir(parents=True, exist_ok=True)
    if wants.is_symlink() or wants.exists():
        wants.unlink()
    wants.symlink_to("../voe-agent.service")
    probe_unit = unit.parent / PROBE_UNIT.name
    shutil.copyfile(PROBE_UNIT, probe_unit)
    rule = root / "etc" / "udev" / "rules.d" / "60-voe-probe.rules"
    rule.parent.mkdir(parents=True, exist_ok=True)
    rule.write_text(PROBE_RULE)
    return [lib, launcher, unit, wants, probe_unit, rule]
