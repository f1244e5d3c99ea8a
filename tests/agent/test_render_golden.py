"""What the agent renders, byte for byte, for the review's Windows servers
on a modern host (tests/agent/golden/datacenter.yaml): an active-backup
bonded trunk with tagged vNICs, a dedicated 10g NIC chosen by label, an
LACP bond over an MLAG pair, and a VM's NICs. Each golden file was checked
against Microsoft's cmdlet reference (NetAdapter, NetLbfo, NetTCPIP,
DnsClient, iSCSI) and systemd.netdev(5), systemd.network(5) and netplan's
YAML reference. ``VOE_UPDATE_GOLDEN=1`` writes them again after a deliberate
change (review the diff)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from voe.agent import render, render_windows
from voe.cli.yamlfile import DatacenterFile
from voe.domain import wiring
from voe.domain.inventory import parse

GOLDEN = Path(__file__).parent / "golden"
CASES = [("iis", "physical", "dl385"), ("ad", "physical", "dl385"), ("iis", "vm", "esx1")]


def agent_config(persona: str, kind: str, host: str) -> dict:
    """The configuration the controller answers the persona's agent with
    (the network part comes from the same function the API calls)."""
    inv = parse(DatacenterFile(GOLDEN / "datacenter.yaml").data())
    p = inv.by_name("personas")[persona]
    return {"persona": persona, "generation": 3, "hostname": persona,
            **wiring.agent_network(inv, p, kind, inv.by_name("hosts")[host], None),
            "san": {"initiator_iqn": p.san.initiator_iqn, "wwpn": None}}


def rendered(persona: str, kind: str, host: str) -> dict[str, str]:
    config = agent_config(persona, kind, host)
    out = {"network.ps1": render_windows.script(config), "60-voe.yaml": render.netplan(config)}
    out.update(render.networkd_files(config))
    return out


@pytest.mark.parametrize(("persona", "kind", "host"), CASES)
def test_rendered_files_match_the_golden_ones(persona, kind, host):
    folder = GOLDEN / f"{persona}-{kind}"
    files = rendered(persona, kind, host)
    if os.environ.get("VOE_UPDATE_GOLDEN") == "1":
        folder.mkdir(exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for name, text in files.items():
            (folder / name).write_text(text)
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)
    for name, text in files.items():
        assert (folder / name).read_text() == text, f"{folder.name}/{name} differs from what the agent renders"


def test_the_iis_trunk_is_a_two_nic_team_with_its_vlans_as_team_interfaces():
    script = render_windows.script(agent_config("iis", "physical", "dl385"))
    assert ("Set-VoeTeam 'trunk' @('trunk-nic0', 'trunk-nic1') 'SwitchIndependent' @('trunk-nic1')" in script)
    assert "Set-VoeTeamVlan 'trunk' 'front' 100" in script and "Set-VoeTeamVlan 'trunk' 'back' 200" in script
    assert "Set-VoeAddress 'trunk' 'IPv4' '10.0.3.21' 24 '' @()" in script  # the boot vNIC, untagged
    assert "Set-VoeAddress 'front' 'IPv4' '10.0.1.21' 24 '10.0.1.1' @('10.0.1.53')" in script  # the first gateway
    assert "Set-VoeAddress 'back' 'IPv4' '10.0.2.21' 24 '' @('10.0.2.53', '10.0.2.54')" in script
    assert script.rstrip().endswith("Set-VoeInitiator 'iqn.2026-11.io.voe:persona:iis'")


def test_a_value_cannot_break_out_of_its_quotes():
    assert render_windows.quote("a'; Remove-Item C:\\ -Recurse; '") == "'a''; Remove-Item C:\\ -Recurse; '''"
