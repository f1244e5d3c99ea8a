"""``voe apply``, ``voe diff`` and ``voe export`` through the real CLI against a
controller on a TCP port: the operator's git workflow."""

from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

from tests.conftest import EXAMPLE
from voe.cli.main import app


@pytest.fixture
def voe(live_controller, monkeypatch):
    url, token = live_controller
    monkeypatch.setenv("VOE_URL", url)
    monkeypatch.setenv("VOE_TOKEN", token)
    monkeypatch.setenv("COLUMNS", "240")  # rich tables: one row per line
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return run


def test_apply_twice_changes_nothing_the_second_time(voe):
    first = voe("apply", "-f", str(EXAMPLE))
    assert first.exit_code == 0, first.output
    assert "+ persona oracle" in first.output and "19 object(s) changed" in first.output
    second = voe("apply", "-f", str(EXAMPLE))
    assert second.exit_code == 0
    assert second.output.strip() == "no changes: the inventory already matches"


def test_export_then_diff_exits_0_and_a_change_exits_1(voe, tmp_path):
    voe("apply", "-f", str(EXAMPLE))
    exported = voe("export")
    assert exported.exit_code == 0
    x = tmp_path / "x.yaml"
    x.write_text(exported.output)
    assert "voe-lab" not in exported.output  # no BMC password in an export
    assert voe("diff", "-f", str(x)).exit_code == 0
    x.write_text(exported.output.replace("vlan: 200", "vlan: 201"))
    changed = voe("diff", "-f", str(x))
    assert changed.exit_code == 1
    assert "~ network back (vlan)" in changed.output


def test_export_rebuilds_the_same_inventory_on_an_empty_controller(voe, tmp_path, services):
    voe("apply", "-f", str(EXAMPLE))
    before = services.inventory.load()
    x = tmp_path / "x.yaml"
    x.write_text(voe("export").output)
    voe("apply", "-f", str(x), "--prune")  # a no-op on the same controller
    from voe.cli.yamlfile import DatacenterFile
    from voe.domain.inventory import Inventory, parse
    from voe.domain.models import SECRET_FIELDS

    def without_secrets(inv: Inventory) -> dict:
        doc = inv.model_dump(mode="json")
        for kind, paths in SECRET_FIELDS.items():
            for spec in doc[kind]:
                for path in paths:
                    parent = spec
                    for part in path[:-1]:
                        parent = parent.get(part) if isinstance(parent, dict) else None
                    if isinstance(parent, dict):
                        parent.pop(path[-1], None)
        return doc

    rebuilt = parse(DatacenterFile(x).data())
    assert without_secrets(rebuilt) == without_secrets(before)


def test_prune_deletes_what_the_file_leaves_out(voe, tmp_path):
    voe("apply", "-f", str(EXAMPLE))
    small = tmp_path / "small.yaml"
    small.write_text("networks:\n  - {name: front, vlan: 100, subnet: 10.0.1.0/24, gateway: 10.0.1.1,"
                     " description: 'public side, load balancer and web servers'}\n")
    out = voe("apply", "-f", str(small), "--prune", "--dry-run")
    assert "- group sample-app" in out.output and "- network back" in out.output
    assert "front" not in out.output


def test_invalid_file_is_rejected_whole_with_file_and_line(voe, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        networks:
          - name: front
            vlan: 100
            subnet: 10.0.1.0/24
          - name: back
            vlan: 4095
            subnet: 10.0.2.0/24
        personas:
          - name: web
            image: {nfs_root: "nfs:/x"}
            vnics:
              - {network: front, ip: 10.0.9.9}
            colour: blue
        """))
    r = voe("apply", "-f", str(bad))
    assert r.exit_code == 2
    lines = r.output.splitlines()
    assert f"{bad}:6: networks.1.vlan: VLAN 4095 is outside 1-4094 (0 is priority tagging, 4095 is reserved)" in lines
    assert any(line.startswith(f"{bad}:13: personas.0.colour: unknown field 'colour'") for line in lines)
    assert f"{bad} rejected whole; nothing was changed" in r.output
    assert voe("network", "list", "--json").output.strip() == "[]"


def test_cross_object_problem_points_at_its_line(voe, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        networks:
          - {name: front, vlan: 100, subnet: 10.0.1.0/24}
        personas:
          - name: web
            image: {nfs_root: "nfs:/x"}
            vnics:
              - {network: front, ip: 10.0.9.9}
        """))
    r = voe("apply", "-f", str(bad))
    assert f"{bad}:7: personas.web.vnics.0.ip: 10.0.9.9 is outside subnet 10.0.1.0/24 of network 'front'" in r.output


def test_yaml_syntax_error_names_the_line(voe, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("networks:\n  - name: front\n   vlan: [100\n")
    r = voe("apply", "-f", str(bad))
    assert r.exit_code == 2 and f"{bad}:" in r.output


def test_list_show_json_and_tables(voe):
    voe("apply", "-f", str(EXAMPLE))
    import json

    personas = json.loads(voe("persona", "list", "--json").output)
    assert [p["name"] for p in personas] == ["bea-1", "bea-2", "lb", "oracle", "web-1", "web-2", "web-3"]
    table = voe("host", "list").output
    assert "dl360-1" in table and "lab 8 vCPU 10GiB" in table
    shown = json.loads(voe("host", "show", "dl360-1", "--json").output)
    assert shown["bmc"]["password_set"] is True and "password" not in shown["bmc"]


def test_token_create_prints_a_working_token(voe, live_controller):
    import os
    import ssl

    import httpx

    r = voe("token", "create", "--role", "operator", "--name", "ci")
    token = r.output.strip()
    assert token.startswith("voe_")
    who = httpx.get(live_controller[0] + "/api/v1/whoami", headers={"Authorization": f"Bearer {token}"},
                    verify=ssl.create_default_context(cafile=os.environ["VOE_CA"])).json()
    assert who == {"name": "ci", "role": "operator", "persona": None}


def test_cli_finds_the_controller_through_its_data_dir(live_controller, services, monkeypatch):
    monkeypatch.delenv("VOE_URL", raising=False)
    monkeypatch.delenv("VOE_TOKEN", raising=False)
    (services.data_dir / "controller.url").write_text(live_controller[0])
    r = CliRunner().invoke(app, ["--data-dir", str(services.data_dir), "network", "list", "--json"])
    assert r.exit_code == 0 and r.output.strip() == "[]"
