"""Typed errors, raised where they happen and turned into API/CLI messages in one place.

Every error names *what* failed (a field, a device, an object) and, where one
exists, the fix, because an operator at 3 a.m. reads the message, not the code.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class VoeError(Exception):
    """Base of every error voe raises on purpose."""


@dataclass
class FieldProblem:
    """One thing wrong with one field: where (a path such as
    ``personas.web-1.vnics.0.ip``), which rule it broke, and what to do."""

    loc: tuple[str | int, ...]
    msg: str
    type: str = "value_error"

    def path(self) -> str:
        return ".".join(str(p) for p in self.loc)

    def as_dict(self) -> dict:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.type}


@dataclass
class InvalidInventory(VoeError):
    """The inventory (a file, or one API write) breaks a rule; nothing was written."""

    problems: list[FieldProblem] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{p.path()}: {p.msg}" for p in self.problems)


@dataclass
class Conflict(VoeError):
    """The write collides with something that exists (duplicate MAC, IP or VLAN,
    deleting a network still in use). Maps to HTTP 409."""

    reason: str
    loc: tuple[str | int, ...] = ()

    def __str__(self) -> str:
        return self.reason


@dataclass
class NotFound(VoeError):
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r} does not exist"


@dataclass
class DriverError(VoeError):
    """A driver call failed. ``device`` names the host, switch or hypervisor,
    ``operation`` the call, ``cause`` what the device or transport said.
    ``transient`` tells the caller whether a retry may help (a timeout may;
    a wrong password will not)."""

    device: str
    operation: str
    cause: str
    transient: bool = False

    def __str__(self) -> str:
        return f"{self.device}: {self.operation} failed: {self.cause}"


class DriverTimeout(DriverError):
    """The device did not answer in time; transient by nature."""

    def __init__(self, device: str, operation: str, seconds: float):
        super().__init__(device, operation, f"no answer within {seconds:g} s", transient=True)


class DriverNotFound(VoeError):
    def __init__(self, concern: str, name: str, known: list[str]):
        self.concern, self.name, self.known = concern, name, known
        super().__init__(
            f"no {concern} driver named {name!r}; installed: {', '.join(sorted(known)) or 'none'}"
        )
