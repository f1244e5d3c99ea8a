"""The dnsmasq configuration, checked by Debian's dnsmasq itself (``--test``)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from voe.drivers.boot import dnsmasq
from voe.drivers.boot.ipxe import UnsafeBootValue

DNSMASQ = shutil.which("dnsmasq", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
needs_dnsmasq = pytest.mark.skipif(DNSMASQ is None, reason="dnsmasq not installed (apt install dnsmasq-base)")

FULL = dnsmasq.DhcpBoot("http://10.0.0.2:8470", interface="eth1", range_start="10.0.0.100",
                        range_end="10.0.0.200", netmask="255.255.255.0")
PROXY = dnsmasq.DhcpBoot("http://10.0.0.2:8470", proxy_subnet="10.0.0.0/24")


def dnsmasq_test(tmp_path, text: str) -> subprocess.CompletedProcess:
    conf = tmp_path / "dnsmasq.conf"
    conf.write_text(text)
    return subprocess.run([DNSMASQ, "--test", "-C", str(conf)], capture_output=True, text=True, timeout=10)


@needs_dnsmasq
@pytest.mark.parametrize("cfg", [FULL, PROXY], ids=["full", "proxy"])
def test_dnsmasq_accepts_the_configuration(tmp_path, cfg):
    r = dnsmasq_test(tmp_path, dnsmasq.render(cfg))
    assert r.returncode == 0, r.stderr
    assert "syntax check OK" in r.stderr + r.stdout


@needs_dnsmasq
def test_dnsmasq_check_is_a_real_check(tmp_path):
    r = dnsmasq_test(tmp_path, dnsmasq.render(FULL) + "dhcp-boot=tag:\n")
    assert r.returncode != 0


def test_ipxe_chains_to_the_controller_and_pxe_roms_get_ipxe_by_arch():
    lines = dnsmasq.render(FULL).splitlines()
    assert "dhcp-userclass=set:ipxe,iPXE" in lines
    assert "dhcp-boot=tag:ipxe,http://10.0.0.2:8470/boot/ipxe/${net0/mac}" in lines
    assert "dhcp-boot=tag:!ipxe,tag:bios,undionly.kpxe" in lines
    assert "dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi" in lines
    assert "dhcp-range=10.0.0.100,10.0.0.200,255.255.255.0,12h" in lines
    assert "enable-tftp" in lines


def test_proxy_mode_leaves_addresses_to_the_other_dhcp_server():
    lines = dnsmasq.render(PROXY).splitlines()
    assert "dhcp-range=10.0.0.0,proxy,255.255.255.0" in lines
    assert 'pxe-service=tag:!ipxe,x86PC,"voe iPXE",undionly.kpxe' in lines


def test_full_or_proxy_not_both():
    with pytest.raises(ValueError, match="either"):
        dnsmasq.DhcpBoot("http://c", range_start="10.0.0.1", range_end="10.0.0.9", proxy_subnet="10.0.0.0/24")


def test_a_value_with_a_newline_cannot_add_a_directive():
    with pytest.raises(UnsafeBootValue):
        dnsmasq.render(dnsmasq.DhcpBoot("http://c\ndhcp-script=/tmp/x", proxy_subnet="10.0.0.0/24"))
