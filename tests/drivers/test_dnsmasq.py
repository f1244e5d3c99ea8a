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

FULL = dnsmasq.DhcpBoot("http://10.0.0.2:8470", interfaces=("eth1",), range_start="10.0.0.100",
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
    with pytest.raises(ValueError, match="give one of"):
        dnsmasq.DhcpBoot("http://c", range_start="10.0.0.1", range_end="10.0.0.9", proxy_subnet="10.0.0.0/24")


def test_a_value_with_a_newline_cannot_add_a_directive():
    with pytest.raises(UnsafeBootValue):
        dnsmasq.render(dnsmasq.DhcpBoot("http://c\ndhcp-script=/tmp/x", proxy_subnet="10.0.0.0/24"))


STATIC = dnsmasq.DhcpBoot("http://10.77.0.1:8480", interfaces=("labbr0", "labbr1"),
                          static_subnets=("10.77.0.0/24", "10.0.1.0/24"), hosts_dir="/var/lib/voe/dhcp-hosts",
                          known_only=True, ra_prefixes=("fd00:766f:65::/64", "fd00:766f:65:1::/64"))


@needs_dnsmasq
def test_dnsmasq_accepts_answering_only_the_macs_voe_names(tmp_path):
    r = dnsmasq_test(tmp_path, dnsmasq.render(STATIC))
    assert r.returncode == 0, r.stderr
    lines = dnsmasq.render(STATIC).splitlines()
    assert "dhcp-range=10.77.0.0,static,255.255.255.0,12h" in lines  # each boot network its own subnet
    assert "dhcp-range=10.0.1.0,static,255.255.255.0,12h" in lines
    assert "interface=labbr0" in lines and "interface=labbr1" in lines
    assert "dhcp-hostsdir=/var/lib/voe/dhcp-hosts" in lines
    assert "dhcp-ignore=tag:!known" in lines
    assert "enable-ra" in lines and "dhcp-range=fd00:766f:65::,ra-only,64" in lines
    assert "dhcp-range=fd00:766f:65:1::,ra-only,64" in lines


def test_ipxe_waits_for_no_proxydhcp_unless_voe_is_the_proxy():
    assert "dhcp-option=tag:ipxe,encap:175,176,1" in dnsmasq.render(STATIC).splitlines()
    assert "dhcp-option=tag:ipxe,encap:175,176,1" in dnsmasq.render(FULL).splitlines()
    assert not any("175" in line for line in dnsmasq.render(PROXY).splitlines())


def test_an_advertised_prefix_must_be_ipv6():
    with pytest.raises(ValueError):
        dnsmasq.DhcpBoot("http://c", static_subnets=("10.0.0.0/24",), ra_prefixes=("10.1.0.0/24",))


def test_a_mac_is_named_with_its_address_and_then_refused(tmp_path):
    hosts = dnsmasq.DhcpHosts(tmp_path / "hosts")
    hosts.allow("52:54:00:12:34:56", "10.77.0.21")
    assert (tmp_path / "hosts" / "52-54-00-12-34-56").read_text() == "52:54:00:12:34:56,10.77.0.21\n"
    hosts.deny("52:54:00:12:34:56")  # dnsmasq would not notice the file removed
    assert (tmp_path / "hosts" / "52-54-00-12-34-56").read_text() == "52:54:00:12:34:56,ignore\n"
    assert sorted(p.name for p in (tmp_path / "hosts").iterdir()) == ["52-54-00-12-34-56"]
    with pytest.raises(ValueError):
        hosts.allow("52:54:00:12:34:57", "10.77.0.21\ndhcp-script=/bin/sh")


def test_answering_only_known_macs_needs_where_they_are_named():
    with pytest.raises(ValueError, match="hosts_dir"):
        dnsmasq.DhcpBoot("http://c", static_subnets=("10.0.0.0/24",), known_only=True)
