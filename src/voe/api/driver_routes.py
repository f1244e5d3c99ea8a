"""``POST /devices/{name}/check``: reach a host's BMC and hypervisor, or a
switch, with fresh driver sessions and the stored credentials, and say
what answered and what failed. Runs in the controller because only it
holds the credentials (the API never returns them)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request

from voe.api.auth import Operator
from voe.drivers import factory
from voe.drivers.base import Driver
from voe.errors import DriverError, NotFound

router = APIRouter(tags=["drivers"])


def _check(concern: str, driver_name: str, build: Callable[[], Driver], timeout: float) -> dict:
    result = {"concern": concern, "driver": driver_name}
    driver = None
    try:
        driver = build()
        driver.settings = driver.settings.model_copy(update={"timeout": timeout, "retries": 0})
        return {**result, "ok": True, "seen": driver.check()}
    except DriverError as e:
        return {**result, "ok": False, "error": str(e), "transient": e.transient}
    except Exception as e:  # a driver's settings that do not validate, a plugin that fails to load
        return {**result, "ok": False, "error": f"{type(e).__name__}: {e}", "transient": False}
    finally:
        if driver is not None:
            driver.close()


@router.post("/devices/{name}/check", summary="Reach a host's BMC and hypervisor, or a switch, and report")
def check_device(request: Request, name: str, _: Operator) -> dict:
    inv = request.app.state.services.inventory.load()
    timeout = request.app.state.timing.driver_timeout
    host = inv.by_name("hosts").get(name)
    if host is not None:
        checks = [_check("power", host.bmc.driver, lambda: factory.power_for_host(host), timeout)]
        if host.hypervisor is not None:
            checks.append(_check("hypervisor", host.hypervisor.driver, lambda: factory.hypervisor_for_host(host), timeout))
        return {"device": name, "kind": "host", "checks": checks}
    switch = inv.by_name("switches").get(name)
    if switch is not None:
        return {"device": name, "kind": "switch",
                "checks": [_check("switch", switch.driver, lambda: factory.switch_for(switch), timeout)]}
    raise NotFound("host or switch", name)
