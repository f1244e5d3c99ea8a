"""The agent's HTTP(S) calls to the controller, with the standard library
only (http.client + ssl). TLS is verified against a CA bundle when one is
given; else against the CA the controller serves, taken only if its SHA-256
is the pin the boot script carried; else against the system's CAs.

Several controllers may serve (``base`` is then a comma-separated list,
the order the boot script chose): a call that cannot reach one goes to the
next at once, and stays with it while it answers. The controllers' answers
name the ones serving now (``know``): one started after this agent booted
is tried too, one gone for good no longer is.

One connection is kept open from beat to beat: a connection per beat would
cost the controller an accept, a protocol object and a close for every
beat, and beats are most of what a controller serves."""

from __future__ import annotations

import hashlib
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


EXCHANGE_TIMEOUT = 30.0
"""Seconds the bootstrap exchange waits for its answer. Unlike a beat, it
cannot be sent again: a controller that spent the token but answered after
the wait would refuse the second try. A controller starting a thousand
personas at once may take seconds to answer."""


class Untrusted(Exception):
    """The CA the controller serves is not the one the boot script pinned."""


_DROPPED = (http.client.RemoteDisconnected, http.client.BadStatusLine, BrokenPipeError, ConnectionResetError,
            ConnectionAbortedError)
"""What a kept connection the controller closed meanwhile (its idle
timeout, a restart) raises at its next use, before any answer."""


class Controller:
    def __init__(self, base: str, token: str, ca: str | None = None, timeout: float = 2.0,
                 ca_pin: str | None = None, proxy: str | None = None):
        """``proxy``: an HTTP proxy (``http://HOST:PORT``) that every call
        is tunnelled through (``CONNECT``), where the network has no direct
        route to the controllers."""
        self.bases = [b.strip().rstrip("/") for b in base.split(",") if b.strip()]
        p = urlsplit(proxy) if proxy else None
        self._proxy = (p.hostname or "127.0.0.1", p.port or 3128) if p else None
        self.token = token
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._use(0)
        self._pin = ca_pin.lower() if ca_pin else None
        pinned_later = self._tls and ca is None and self._pin is not None
        self.context = ssl.create_default_context(cafile=ca) if self._tls and not pinned_later else None

    def _use(self, index: int) -> None:
        self.close()
        self._at = index % len(self.bases)
        self.base = self.bases[self._at]
        u = urlsplit(self.base)
        self._tls = u.scheme == "https"
        self._host, self._port = u.hostname or "127.0.0.1", u.port
        self._prefix = u.path.rstrip("/")

    def know(self, bases: list[str]) -> None:
        """The controllers to try from now on: the one this agent talks to
        first (it answers), then ``bases`` in their order. An empty list
        (a controller that names none) changes nothing."""
        named = [b.strip().rstrip("/") for b in bases if b.strip()]
        if named:
            self.bases = [self.base, *(b for b in named if b != self.base)]
            self._at = 0

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        """The controller's answer; a controller that does not answer (or
        answers with a server error) is left for the next at once, each
        tried once per call."""
        for _ in self.bases[1:]:
            try:
                return self._call_one(method, path, body)
            except Unreachable:
                self._use(self._at + 1)
        return self._call_one(method, path, body)

    def _call_one(self, method: str, path: str, body: dict | None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        try:
            if self._tls and self.context is None:
                self.context = self._pinned_context()
            status, payload = self._exchange(method, self._prefix + path, data, headers)
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise Unreachable(f"{self.base}: {e or type(e).__name__}") from None
        if status in (401, 403, 409):
            raise Stale(f"controller answered {status}")
        if status >= 400:
            raise Unreachable(f"{self.base} answered {status}")
        return json.loads(payload or b"{}")

    def redeem(self, persona: str, generation: int) -> None:
        """Trade the bootstrap token this client holds for the agent's
        credential, and hold that from now on. A 401 (used, expired) is
        ``Stale``: this boot's token is spent, and only a new boot gets
        another."""
        beat_timeout, self.timeout = self.timeout, EXCHANGE_TIMEOUT
        self.close()  # a connection with the exchange's patience, kept for the calls after it
        try:
            self.token = self.call("POST", "/api/v1/agent/credential",
                                   {"persona": persona, "generation": generation})["token"]
        finally:
            self.timeout = beat_timeout
            if self._conn is not None:
                self._conn.timeout = beat_timeout
                if self._conn.sock is not None:
                    self._conn.sock.settimeout(beat_timeout)

    def _pinned_context(self) -> ssl.SSLContext:
        """The controller's CA, fetched without checking (nothing is sent
        but the request for it) and trusted only if it is the pinned one."""
        unchecked = ssl.create_default_context()
        unchecked.check_hostname = False
        unchecked.verify_mode = ssl.CERT_NONE
        conn = self._connection(unchecked)
        try:
            conn.request("GET", self._prefix + "/boot/ca.pem")
            r = conn.getresponse()
            pem = r.read().decode("ascii", "replace")
        finally:
            conn.close()
        if r.status != 200:
            raise OSError(f"the controller answered {r.status} for its CA")
        try:
            found = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
        except ValueError:
            raise Untrusted(f"{self.base} served no PEM certificate as its CA") from None
        if found != self._pin:
            raise Untrusted(f"{self.base} serves a CA with SHA-256 {found}, not the pinned {self._pin}")
        return ssl.create_default_context(cadata=pem)

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
        self._conn = self._connection(self.context)

    def _connection(self, context: ssl.SSLContext | None) -> http.client.HTTPConnection:
        """A connection to the controller in use, through the proxy if any
        (TLS, when the URL asks for it, runs inside the tunnel)."""
        host, port = self._proxy or (self._host, self._port)
        if self._tls:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=self.timeout,
                                                                            context=context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        if self._proxy is not None:
            conn.set_tunnel(self._host, self._port)
        return conn

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
