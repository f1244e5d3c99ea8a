"""The agent's parameters: from the kernel command line (as an iPXE script
put them there), a file, or flags. ``voe.controller``, ``voe.persona``,
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


def parse(cmdline: str) -> BootArgs:
    words = dict(w.split("=", 1) for w in shlex.split(cmdline) if w.startswith("voe.") and "=" in w)
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
