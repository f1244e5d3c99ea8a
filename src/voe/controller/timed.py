"""A set whose members fade: what the controller noticed a moment ago and
uses as a hint, never as evidence (a device that did not answer, a host
where an incarnation was just fenced). Kept in memory: a restarted
controller simply starts without hints."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable


class TimedSet:
    def __init__(self, memory: float):
        self.memory = memory
        self._at: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def mark(self, key: Hashable) -> None:
        with self._lock:
            self._at[key] = time.monotonic()

    def clear(self, key: Hashable) -> None:
        with self._lock:
            self._at.pop(key, None)

    def ago(self, key: Hashable) -> float | None:
        """Seconds since ``key`` was marked, while it still counts."""
        with self._lock:
            at = self._at.get(key)
        age = None if at is None else time.monotonic() - at
        return age if age is not None and age < self.memory else None

    def members(self) -> frozenset:
        now = time.monotonic()
        with self._lock:
            return frozenset(k for k, at in self._at.items() if now - at < self.memory)
