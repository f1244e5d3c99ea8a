"""Guessed tokens counted per source address: a source that sends more
than ``allowed`` tokens that were never issued within ``window`` seconds
is answered 429 for every token not known valid already, without a store
read, until the oldest guess falls out of the window. A missing token
guesses nothing, and a revoked one is an old credential (an agent of an
ended incarnation), not a guess: neither is counted.

Tokens hold 256 random bits, so this is not what keeps them secret; it
keeps a guesser or a misconfigured client from costing the store a read
per request, and says in the log who it is. Valid tokens from the same
address keep working: many agents, or a whole lab, may share one address
behind NAT, and a beat refused would look like a dead persona."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

log = logging.getLogger(__name__)

ALLOWED = 20
WINDOW = 60.0
KEEP_AT_MOST = 10_000
"""Sources remembered at once; the quietest are forgotten first."""


class AuthFailures:
    def __init__(self, allowed: int = ALLOWED, window: float = WINDOW):
        self.allowed, self.window = allowed, window
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}

    def blocked_for(self, source: str) -> float:
        """Seconds until ``source`` may authenticate again; 0 when it may now."""
        if not self._failures:  # the common case, without a lock
            return 0.0
        now = time.monotonic()
        with self._lock:
            seen = self._failures.get(source)
            if seen is None:
                return 0.0
            while seen and now - seen[0] > self.window:
                seen.popleft()
            if not seen:
                del self._failures[source]
                return 0.0
            return self.window - (now - seen[0]) if len(seen) >= self.allowed else 0.0

    def failed(self, source: str) -> None:
        now = time.monotonic()
        with self._lock:
            seen = self._failures.setdefault(source, deque())
            seen.append(now)
            if len(seen) > self.allowed:
                seen.popleft()
            elif len(seen) == self.allowed:
                log.warning("%d wrong tokens from %s within %g s: its requests are refused for a while",
                            self.allowed, source, self.window)
            if len(self._failures) > KEEP_AT_MOST:
                quietest = min(self._failures, key=lambda s: self._failures[s][-1])
                del self._failures[quietest]
