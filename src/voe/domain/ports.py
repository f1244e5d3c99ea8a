"""What voe owns on a switch port, as a value: the drivers write it, the
port plan computes it, the physical view shows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class PortConfig:
    """What voe owns on one switch port.

    ``access``: untagged on ``native_vlan`` only. ``trunk``: tagged on every
    VLAN of ``tagged`` and untagged on ``native_vlan`` (None: no untagged VLAN).
    """

    mode: Literal["access", "trunk"]
    native_vlan: int | None = None
    tagged: frozenset[int] = field(default_factory=frozenset)
    admin_up: bool = True

    @classmethod
    def access(cls, vlan: int, admin_up: bool = True) -> PortConfig:
        return cls("access", vlan, frozenset(), admin_up)

    @classmethod
    def trunk(cls, tagged: set[int] | frozenset[int], native_vlan: int | None = None, admin_up: bool = True) -> PortConfig:
        return cls("trunk", native_vlan, frozenset(tagged) - ({native_vlan} if native_vlan else set()), admin_up)

    def vlans(self) -> frozenset[int]:
        return self.tagged | ({self.native_vlan} if self.native_vlan else frozenset())


def _same_vlans(a: PortConfig, b: PortConfig) -> bool:
    return a.native_vlan == b.native_vlan and a.tagged == b.tagged


def carries(seen: PortConfig, want: PortConfig) -> bool:
    """A port read back as ``seen`` already does what ``want`` asks."""
    return _same_vlans(seen, want) and seen.admin_up == want.admin_up
