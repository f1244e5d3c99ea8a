"""The agent's parameters: from the kernel command line (as an iPXE script
put them there), the boot script itself (for an OS booted from a SAN
LUN, which gets no command line from voe: its own names the boot service,
``voe.boot_url=URL``, or the agent is told ``--boot-url``), a file, or flags. ``voe.controller``, ``voe.persona``,
``voe.generation`` and ``voe.token`` (a one-use bootstrap token) are
required; ``voe.ca`` names a CA bundle for TLS, ``voe.ca_sha256`` pins the
CA the controller serves."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

REQUIRED = ("voe.controller", "voe.persona", "voe.generation", "voe.token")


class BootArgsError(ValueError):
    pass


@dataclass(frozen=True)
class BootArgs:
    controller: str
    persona: str
    generation: int
    token: str
    ca: str | None = None
    ca_sha256: str | None = None


def _voe_words(cmdline: str) -> dict[str, str]:
    return dict(w.split("=", 1) for w in shlex.split(cmdline) if w.startswith("voe.") and "=" in w)


def parse(cmdline: str) -> BootArgs:
    words = _voe_words(cmdline)
    missing = [k for k in REQUIRED if not words.get(k)]
    if missing:
        raise BootArgsError(f"the command line lacks {', '.join(missing)} (expected words like "
                            "voe.controller=URL voe.persona=NAME voe.generation=N voe.token=T)")
    try:
        generation = int(words["voe.generation"])
    except ValueError:
        raise BootArgsError(f"voe.generation={words['voe.generation']!r} is not a number") from None
    return BootArgs(words["voe.controller"].rstrip("/"), words["voe.persona"], generation, words["voe.token"],
                    words.get("voe.ca"), words.get("voe.ca_sha256"))


def boot_service(cmdline: str) -> str | None:
    """The boot service a command line without the agent's parameters
    names (``voe.boot_url=URL``): where they are to be read."""
    words = _voe_words(cmdline)
    return None if "voe.persona" in words else words.get("voe.boot_url") or None


def from_boot_script(script: str) -> BootArgs:
    """The words of an iPXE script's ``set voe_args`` line: how an OS that
    gets no kernel command line (a SAN-booted one) learns them."""
    line = next((ln for ln in script.splitlines() if ln.startswith("set voe_args ")), None)
    if line is None:
        raise BootArgsError("the boot script has no 'set voe_args' line")
    return parse(line[len("set voe_args "):])


def from_boot_service(url: str, macs: list[str], timeout: float = 10.0) -> BootArgs:
    """The words of the boot script voe serves for one of ``macs`` on its
    boot port ``url`` (plain HTTP, as firmware fetched it: the script pins
    the CA the agent then checks)."""
    import urllib.error
    import urllib.request

    for mac in macs:
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/boot/ipxe/{mac}", timeout=timeout) as r:
                return from_boot_script(r.read().decode())
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise BootArgsError(f"{url} answered {e.code} for the boot script of {mac}") from None
        except (urllib.error.URLError, OSError) as e:
            raise BootArgsError(f"cannot reach the boot service at {url}: {e}") from None
    raise BootArgsError(f"{url} has no boot script for any NIC of this machine ({', '.join(macs) or 'no NICs'})")
