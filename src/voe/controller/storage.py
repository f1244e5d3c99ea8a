"""Storage access follows incarnations: granted to a new incarnation before
it powers on, revoked once an incarnation ended. A persona's initiator is
its own identity, the same for every incarnation, so a late revoke of an
old incarnation must not cut off the new one: grant and revoke of one
persona hold one lock, and a revoke is skipped once a newer incarnation
exists."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import replace

from voe.domain import storage
from voe.domain.inventory import Inventory
from voe.domain.models import Persona
from voe.store.runtime import Incarnation


class StorageKeeper:
    def __init__(self, runtime, devices, log, images=None):
        self.images = images  # voe's image store: an iSCSI persona's LUN is its clone there
        self.runtime = runtime
        self.devices = devices
        self.log = log
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    def _access(self, inv: Inventory, p: Persona):
        found = storage.access_for(inv, p)
        if found is None or found[1].kind != "iscsi" or self.images is None:
            return found
        image = self.images.persona_image(p.name)
        return found if image is None else (found[0], replace(found[1], path=image.path))

    def grant(self, inv: Inventory, p: Persona, generation: int) -> str | None:
        found = self._access(inv, p)
        if found is None:
            return None
        host, access = found
        with self._locks[p.name]:
            self.devices.storage(host).grant(access)
        what = f"{access.kind} {access.target or access.path} to {access.initiator} on {host.name}"
        self.log("info", "storage", f"granted {what} (generation {generation})", persona=p.name, host=host.name)
        return what

    def revoke(self, inv: Inventory, p: Persona, inc: Incarnation) -> str | None:
        """Revoke ``inc``'s access, confirmed by the service; None when the
        persona has no managed storage or a newer incarnation holds it."""
        found = self._access(inv, p)
        if found is None:
            return None
        host, access = found
        with self._locks[p.name]:
            current = self.runtime.current(p.name)
            if current is not None and current.generation > inc.generation:
                return None
            self.devices.storage(host).revoke(access)
        what = f"{access.kind} {access.target or access.path} from {access.initiator} on {host.name}"
        self.log("info", "storage", f"revoked {what} (generation {inc.generation})", persona=p.name, host=host.name)
        return what
