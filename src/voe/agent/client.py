"""The agent's HTTP(S) calls to the controller, with the standard library
only (http.client + ssl), TLS verified against a CA bundle when one is given.

One connection is kept open from beat to beat: a connection per beat would
cost the controller an accept, a protocol object and a close for every
beat, and beats are most of what a controller serves."""

from __future__ import annotations

import http.client
import json
import select
import ssl
from urllib.parse import urlsplit


class Stale(Exception):
    """The controller no longer knows this incarnation (401/403/409 or an
    explicit 'stale'): stop at once."""


class Unreachable(Exception):
    pass


_DROPPED = (http.client.RemoteDisconnected, http.client.BadStatusLine, BrokenPipeError, ConnectionResetError,
            ConnectionAbortedError)
"""What a kept connection the controller closed meanwhile (its idle
timeout, a restart) raises at its next use, before any answer."""


class Controller:
    def __init__(self, base: str, token: str, ca: str | None = None, timeout: float = 2.0):
        self.base = base
        self.token = token
        self.timeout = timeout
        u = urlsplit(base)
        self._tls = u.scheme == "https"
        self._host, self._port = u.hostname or "127.0.0.1", u.port
        self._prefix = u.path.rstrip("/")
        self.context = ssl.create_default_context(cafile=ca) if self._tls else None
        self._conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        try:
            status, payload = self._exchange(method, self._prefix + path, data, headers)
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise Unreachable(str(e) or type(e).__name__) from None
        if status in (401, 403, 409):
            raise Stale(f"controller answered {status}")
        if status >= 400:
            raise Unreachable(f"controller answered {status}")
        return json.loads(payload or b"{}")

    def _exchange(self, method: str, path: str, data: bytes | None, headers: dict) -> tuple[int, bytes]:
        """One request on the kept connection; sent once more on a new one
        if the kept one turns out closed before any answer came (every
        call here may be repeated: a beat, a read of the configuration)."""
        fresh = self._conn is None or self._dropped()
        if fresh:
            self._open()
        try:
            return self._send(method, path, data, headers)
        except _DROPPED:
            if fresh:
                raise
            self._open()
            return self._send(method, path, data, headers)

    def _send(self, method: str, path: str, data: bytes | None, headers: dict) -> tuple[int, bytes]:
        self._conn.request(method, path, body=data, headers=headers)
        r = self._conn.getresponse()
        payload = r.read()
        if r.will_close:
            self.close()
        return r.status, payload

    def _open(self) -> None:
        self.close()
        if self._tls:
            self._conn = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout,
                                                     context=self.context)
        else:
            self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _dropped(self) -> bool:
        """A kept connection with something to read before a request was
        sent has been closed by the controller (or is out of step): not
        worth a try."""
        sock = self._conn.sock
        if sock is None:
            return True
        try:
            return bool(select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
