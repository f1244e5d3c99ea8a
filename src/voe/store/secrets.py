"""Secrets at rest: BMC and hypervisor passwords are sealed with a key kept in
the data directory (or ``VOE_SECRET_KEY`` for several controllers sharing one
PostgreSQL), so neither the SQLite file nor a database dump holds them in
clear. The API strips them from every answer; only drivers see them unsealed.
"""

from __future__ import annotations

import os
from copy import deepcopy
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from voe.domain.models import SECRET_FIELDS
from voe.errors import VoeError

SEALED = "sealed"


class SecretKeyMismatch(VoeError):
    def __str__(self) -> str:
        return ("a stored secret cannot be unsealed with this controller's key; "
                "set VOE_SECRET_KEY (or <data dir>/secret.key) to the key the secrets were sealed with")


def load_key(directory: Path) -> bytes:
    env = os.environ.get("VOE_SECRET_KEY")
    if env:
        return env.encode()
    path = directory / "secret.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key())
    return path.read_bytes().strip()


class Sealer:
    def __init__(self, key: bytes):
        self._fernet = Fernet(key)

    def _walk(self, kind: str, spec: dict, fn) -> dict:
        for path in SECRET_FIELDS.get(kind, []):
            spec = _replaced(spec, path, fn)
        return spec

    def seal(self, kind: str, spec: dict) -> dict:
        return self._walk(kind, spec, lambda v: {SEALED: self._fernet.encrypt(str(v).encode()).decode()})

    def unseal(self, kind: str, spec: dict) -> dict:
        def open_(v: Any) -> Any:
            if isinstance(v, dict) and SEALED in v:
                try:
                    return self._fernet.decrypt(v[SEALED].encode()).decode()
                except InvalidToken:
                    raise SecretKeyMismatch() from None
            return v

        return self._walk(kind, spec, open_)


def _replaced(spec: Any, path: tuple[str, ...], fn) -> Any:
    """``spec`` with the value at ``path`` (if set) replaced by ``fn`` of
    it: the dicts along the path copied, the caller's left as they were,
    the rest shared (a deep copy of every object costs a whole inventory
    read most of its time)."""
    if not isinstance(spec, dict) or spec.get(path[0]) is None:
        return spec
    value = spec[path[0]]
    new = fn(value) if len(path) == 1 else _replaced(value, path[1:], fn)
    return spec if new is value else {**spec, path[0]: new}


def strip(kind: str, spec: dict) -> dict:
    """The spec as any API client may see it: secrets removed, and a flag
    saying whether one is set, so a form can show 'set' without the value."""
    out = deepcopy(spec)
    for path in SECRET_FIELDS.get(kind, []):
        parent: Any = out
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and path[-1] in parent:
            was_set = parent.pop(path[-1]) is not None
            parent[f"{path[-1]}_set"] = was_set
    return out
