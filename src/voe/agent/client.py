"""The agent's HTTP(S) calls to the controller, with the standard library
only (urllib + ssl), TLS verified against a CA bundle when one is given."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request


class Stale(Exception):
    """The controller no longer knows this incarnation (401/403/409 or an
    explicit 'stale'): stop at once."""


class Unreachable(Exception):
    pass


class Controller:
    def __init__(self, base: str, token: str, ca: str | None = None, timeout: float = 2.0):
        self.base = base
        self.token = token
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca) if base.startswith("https") else None

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self.context) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            if e.code in (401, 403, 409):
                raise Stale(f"controller answered {e.code}") from None
            raise Unreachable(f"controller answered {e.code}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise Unreachable(str(e)) from None
