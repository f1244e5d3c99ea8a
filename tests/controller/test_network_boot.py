"""A start's BMC sequence (next boot PXE, power on, each read back). A
failed start has its server fenced and taken out of placement, so a BMC
that is only slow under a level's burst is asked again before the start
fails; a BMC that refuses, or stays silent, still fails it."""

from __future__ import annotations

import types

import pytest

from voe.controller import start
from voe.drivers.base import DriverSettings, PowerDriver, PowerState
from voe.errors import DriverError, DriverTimeout


class SlowBmc(PowerDriver):
    """A server's BMC that leaves its first ``silent`` boot-device requests
    unanswered, or refuses them all (``refuse``)."""

    def __init__(self, silent: int = 0, refuse: bool = False, on: bool = False):
        super().__init__("h1", DriverSettings(timeout=0.1, retries=0))
        self.silent, self.refuse = silent, refuse
        self.on, self.boot = on, (None, False)
        self.asked = 0
        self.resets = 0

    def check(self) -> str:
        return "fake"

    def _set_boot_device(self, device, persistent) -> None:
        self.asked += 1
        if self.refuse:
            raise DriverError(self.device, "set boot device", "insufficient privilege")
        if self.asked <= self.silent:
            raise DriverTimeout(self.device, "set boot device", self.settings.timeout)
        self.boot = (device, persistent)

    def _get_boot_device(self):
        return self.boot

    def _power_on(self) -> None:
        self.on = True

    def _power_off(self) -> None:
        self.on = False

    def _soft_off(self) -> None:
        self.on = False

    def _reset(self) -> None:
        self.resets += 1

    def _get_power_state(self) -> PowerState:
        return PowerState.ON if self.on else PowerState.OFF


def boot_through(bmc: SlowBmc) -> list[str]:
    logged: list[str] = []
    ctx = types.SimpleNamespace(devices=types.SimpleNamespace(power=lambda host: bmc),
                                log=lambda severity, kind, message, **where: logged.append(f"{severity}: {message}"))
    start._network_boot(ctx, types.SimpleNamespace(name="h1"), {"persona": "p", "host": "h1"})
    return logged


def test_a_bmc_silent_under_a_burst_is_asked_again_and_the_server_boots():
    bmc = SlowBmc(silent=start.BMC_TRIES - 1)
    logged = boot_through(bmc)
    assert bmc.on and bmc.boot == ("pxe", False)
    assert sum("asking again" in line for line in logged) == start.BMC_TRIES - 1


def test_a_bmc_silent_at_every_try_fails_the_start():
    bmc = SlowBmc(silent=start.BMC_TRIES)
    with pytest.raises(DriverTimeout):
        boot_through(bmc)
    assert bmc.asked == start.BMC_TRIES and not bmc.on


def test_a_bmc_that_refuses_fails_the_start_at_once():
    bmc = SlowBmc(refuse=True)
    with pytest.raises(DriverError, match="insufficient privilege"):
        boot_through(bmc)
    assert bmc.asked == 1


def test_a_server_already_on_is_reset_into_its_network_boot():
    bmc = SlowBmc(on=True)
    boot_through(bmc)
    assert bmc.resets == 1 and bmc.boot == ("pxe", False)
