"""A Redfish BMC's SessionService (DSP0266 "Redfish session login"): a
client posts its user name and password to the Sessions collection once and
then sends the ``X-Auth-Token`` it got back; ``DELETE`` on the session logs
out, and a session idle longer than ``SessionTimeout`` expires. A BMC keeps
only a few sessions; the oldest idle one makes room for a new login."""

from __future__ import annotations

import hmac
import itertools
import secrets
import threading
import time
from dataclasses import dataclass

SESSIONS_PATH = "/redfish/v1/SessionService/Sessions"
MAX_SESSIONS = 16  # a BMC's session slots


@dataclass
class Session:
    id: str
    token: str
    username: str
    last_used: float

    @property
    def path(self) -> str:
        return f"{SESSIONS_PATH}/{self.id}"

    def resource(self) -> dict:
        return {"@odata.id": self.path, "@odata.type": "#Session.v1_1_0.Session",
                "Id": self.id, "Name": "User Session", "UserName": self.username}


class SessionService:
    """The sessions of one BMC's single account; safe across its handler
    threads. ``clock`` is monotonic seconds (tests pass their own)."""

    def __init__(self, username: str, password: str, timeout: int = 600, clock=time.monotonic):
        self._username, self._password = username, password
        self.timeout = timeout
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def credentials_match(self, username: str, password: str) -> bool:
        return hmac.compare_digest(username.encode(), self._username.encode()) and \
            hmac.compare_digest(password.encode(), self._password.encode())

    def login(self, username: str, password: str) -> Session | None:
        """A new session, or None when the credentials are wrong."""
        if not self.credentials_match(username, password):
            return None
        with self._lock:
            self._expire()
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: s.last_used)
                del self._sessions[oldest.id]
            session = Session(str(next(self._ids)), secrets.token_urlsafe(24), username, self._clock())
            self._sessions[session.id] = session
            return session

    def authenticate(self, token: str) -> Session | None:
        """The live session this token belongs to (its idle time restarts),
        or None."""
        with self._lock:
            self._expire()
            for session in self._sessions.values():
                if hmac.compare_digest(session.token.encode(), token.encode()):
                    session.last_used = self._clock()
                    return session
        return None

    def logout(self, session_id: str) -> bool:
        with self._lock:
            return self._sessions.pop(session_id, None) is not None

    def find(self, session_id: str) -> Session | None:
        with self._lock:
            self._expire()
            return self._sessions.get(session_id)

    def all(self) -> list[Session]:
        with self._lock:
            self._expire()
            return list(self._sessions.values())

    def _expire(self) -> None:
        now = self._clock()
        for sid in [s.id for s in self._sessions.values() if now - s.last_used > self.timeout]:
            del self._sessions[sid]
