"""A small checker for the iPXE command subset voe emits.

It knows what iPXE itself would reject (unknown commands, a missing
argument, an unbalanced quote or ``${``) plus what voe must never emit
(control characters, a setting used before it is set, a malformed
``sanboot`` URI). Not a full iPXE parser: a script that uses more of
iPXE's language than voe does fails here on purpose.
"""

from __future__ import annotations

import re
import shlex

BUILTIN_SETTINGS = {"net0/mac", "net0/ip", "mac", "ip"}
_REF = re.compile(r"\$\{([^}]*)\}")
_SAN_ISCSI = re.compile(r"^iscsi:(?P<server>[^:]+):(?P<proto>\d*):(?P<port>\d*):(?P<lun>\d*):(?P<target>iqn\.\S+)$")


def check(script: str) -> list[str]:
    """Every problem found, as ``line N: what``; empty when the script is fine."""
    problems: list[str] = []
    lines = script.split("\n")
    if lines[0] != "#!ipxe":
        problems.append("line 1: a script starts with '#!ipxe'")
    if not script.endswith("\n"):
        problems.append("the script does not end with a newline")
    settings = set(BUILTIN_SETTINGS)
    for n, line in enumerate(lines[1:], start=2):
        problems += [f"line {n}: {p}" for p in _check_line(line, settings)]
    return problems


def _check_line(line: str, settings: set[str]) -> list[str]:
    if not line or line.startswith("#"):
        return []
    if any(ord(c) < 0x20 or ord(c) > 0x7e for c in line):
        return ["control or non-ASCII character"]
    if any(c in _REF.sub("", line) for c in "${}"):
        return ["stray $, { or } outside a ${setting} reference"]
    try:
        words = shlex.split(line, comments=False, posix=True)
    except ValueError as e:
        return [f"unbalanced quoting ({e})"]
    unknown = [ref for ref in _REF.findall(line) if ref not in settings]
    if unknown:
        return [f"setting {unknown[0]!r} is used before it is set"]
    command, args = words[0], words[1:]
    rule = _COMMANDS.get(command)
    if rule is None:
        return [f"unknown command {command!r}"]
    return rule(args, settings)


def _set(args: list[str], settings: set[str]) -> list[str]:
    if len(args) < 2:
        return ["set needs a name and a value"]
    if not re.fullmatch(r"[a-z0-9_/.-]+", args[0]):
        return [f"bad setting name {args[0]!r}"]
    settings.add(args[0])
    return []


def _kernel(args: list[str], settings: set[str]) -> list[str]:
    if not args or not re.match(r"^(https?|tftp)://", args[0]):
        return ["kernel needs an http(s) or tftp URI first"]
    return []


def _initrd(args: list[str], settings: set[str]) -> list[str]:
    if args[:1] == ["--name"]:
        if len(args) < 3:
            return ["initrd --name needs a name and a URI"]
        args = args[2:]
    if len(args) != 1 or not re.match(r"^(https?|tftp)://", args[0]):
        return ["initrd needs exactly one http(s) or tftp URI"]
    return []


def _sanboot(args: list[str], settings: set[str]) -> list[str]:
    if len(args) != 1:
        return ["sanboot takes one URI here"]
    m = _SAN_ISCSI.match(args[0])
    if m is None:
        return [f"not an iscsi:SERVER:PROTO:PORT:LUN:IQN URI: {args[0]!r}"]
    if m["port"] and not 0 < int(m["port"]) < 65536:
        return ["iSCSI port out of range"]
    return []


def _no_args(args: list[str], settings: set[str]) -> list[str]:
    return [] if not args or (len(args) == 1 and args[0].isdigit()) else ["takes no arguments"]


def _any(args: list[str], settings: set[str]) -> list[str]:
    return []


_COMMANDS = {"set": _set, "kernel": _kernel, "initrd": _initrd, "boot": _no_args, "sanboot": _sanboot,
             "echo": _any, "exit": _no_args}
