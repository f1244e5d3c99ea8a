"""Every driver installed through entry points loads: a plugin that names a
missing class or module fails here, not at 3 a.m. on a fence."""

from __future__ import annotations

import pytest

from voe.drivers.registry import CONCERNS, available


@pytest.mark.parametrize("concern", CONCERNS)
def test_every_installed_driver_loads(concern):
    """Each entry point names a class that imports and declares its settings."""
    for name, ep in available(concern).items():
        cls = ep.load()
        assert cls.Settings is not None, name


def test_the_drivers_voe_ships_are_registered():
    assert set(available("power")) >= {"ipmi", "redfish"}
    assert set(available("switch")) >= {"snmp", "eos"}
    assert set(available("hypervisor")) >= {"lab", "libvirt"}
    assert set(available("storage")) >= {"tgt", "ganesha"}
