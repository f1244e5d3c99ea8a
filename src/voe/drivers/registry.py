"""Driver discovery through Python entry points, so a vendor adds a driver by
shipping a package, without touching voe (Ironic's ``setup.cfg`` pattern).

Groups: ``voe.drivers.power``, ``voe.drivers.switch``,
``voe.drivers.hypervisor``, ``voe.drivers.storage``.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from voe.drivers.base import Driver
from voe.errors import DriverNotFound

CONCERNS = ("power", "switch", "hypervisor", "storage")


@cache
def available(concern: str) -> dict[str, object]:
    """Entry points of one concern, by driver name (not yet imported)."""
    return {ep.name: ep for ep in entry_points(group=f"voe.drivers.{concern}")}


def load(concern: str, name: str) -> type[Driver]:
    eps = available(concern)
    if name not in eps:
        raise DriverNotFound(concern, name, list(eps))
    return eps[name].load()  # type: ignore[attr-defined]
