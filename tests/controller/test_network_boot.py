"""A start's BMC sequence (every boot PXE, power on, each read back). A
failed start has its server fenced and taken out of placement, so a BMC
that is only slow under a level's burst is asked again before the start
fails; a BMC that refuses, or stays silent, still fails it."""

from __future__ import annotations

import threading
import types

import pytest

from voe.controller import start
from voe.drivers.base import DriverSettings, PowerDriver, PowerState
from voe.errors import DriverError, DriverTimeout


class SlowBmc(PowerDriver):
    """A server's BMC that leaves its first ``silent`` boot-device requests
    unanswered, or refuses them all (``refuse``)."""

    def __init__(self, silent: int = 0, refuse: bool = False, on: bool = False, resets_run: int = 1):
        super().__init__("h1", DriverSettings(timeout=0.1, retries=0))
        self.silent, self.refuse = silent, refuse
        self.on, self.boot = on, (None, False)
        self.asked = 0
        self.resets = 0
        self.resets_run = resets_run  # 2: each reset request resent and run again
        self.booted_from: list[str | None] = []

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

    def _boot(self) -> None:
        """IPMI's boot flags: a one-time choice is used up by the boot."""
        device, persistent = self.boot
        if not persistent:
            self.boot = (None, False)
        self.booted_from.append(device)

    def _power_on(self) -> None:
        if not self.on:
            self.on = True
            self._boot()

    def _power_off(self) -> None:
        self.on = False

    def _soft_off(self) -> None:
        self.on = False

    def _reset(self) -> None:
        self.resets += 1
        for _ in range(self.resets_run):
            self._boot()

    def _get_power_state(self) -> PowerState:
        return PowerState.ON if self.on else PowerState.OFF


def boot_through(bmc: SlowBmc) -> list[str]:
    logged: list[str] = []
    ctx = types.SimpleNamespace(devices=types.SimpleNamespace(power=lambda host: bmc),
                                workers=types.SimpleNamespace(bmc_slots=threading.BoundedSemaphore(1)),
                                log=lambda severity, kind, message, **where: logged.append(f"{severity}: {message}"))
    start._network_boot(ctx, types.SimpleNamespace(name="h1"), {"persona": "p", "host": "h1"})
    return logged


def test_a_bmc_silent_under_a_burst_is_asked_again_and_the_server_boots():
    bmc = SlowBmc(silent=start.BMC_TRIES - 1)
    logged = boot_through(bmc)
    assert bmc.on and bmc.booted_from == ["pxe"]
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
    assert bmc.resets == 1 and bmc.booted_from == ["pxe"]


def test_a_reset_the_bmc_runs_twice_still_boots_the_server_from_the_network():
    """A reset whose answer was lost is resent, and a BMC runs it again:
    the server boots twice, and the second boot too must find its persona's
    script, not a used-up override and a local disk (seen in a 1,000-persona
    start: the persona sat booting nothing until its boot timeout)."""
    bmc = SlowBmc(on=True, resets_run=2)
    boot_through(bmc)
    assert bmc.booted_from == ["pxe", "pxe"]
