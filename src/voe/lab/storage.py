"""A lab storage server: which initiator may reach which NFS root or iSCSI
LUN, served over the lab's JSON API while its host's OS runs (like the
hypervisor API, it goes when the host crashes). The lab's truth report
reads the grants from here, so a test sees a revoke as the service does.

    GET    /v1/grants                          every grant
    PUT    /v1/grants   {persona, kind, path, initiator, target, lun}
    DELETE /v1/grants   {kind, path, initiator, target}   (revoke)
"""

from __future__ import annotations

import threading


def _key(body: dict) -> tuple[str, str]:
    return (body["kind"], body.get("target") or body["path"])


class LabStorage:
    def __init__(self, host: str):
        self.host = host
        self.grants: dict[tuple[str, str], dict] = {}
        self.up = False
        self._lock = threading.Lock()

    def handle(self, method: str, path: str, body: dict) -> tuple[int, object]:
        if path.rstrip("/") != "/v1/grants":
            return 404, {"detail": f"no resource {path}"}
        with self._lock:
            if method == "GET":
                return 200, sorted(self.grants.values(), key=lambda g: (g["kind"], g["persona"]))
            missing = [f for f in ("kind", "path", "initiator") if not body.get(f)]
            if missing:
                return 400, {"detail": f"missing {', '.join(missing)}"}
            if method == "PUT":
                # one initiator per image: granting the new one ends the old one's access
                self.grants[_key(body)] = {f: body.get(f) for f in ("persona", "kind", "path", "initiator", "target", "lun")}
                return 200, self.grants[_key(body)]
            if method == "DELETE":
                held = self.grants.get(_key(body))
                if held is not None and held["initiator"] == body["initiator"]:
                    del self.grants[_key(body)]
                return 204, None
        return 405, {"detail": f"{method} not allowed"}

    def snapshot(self) -> list[dict]:
        with self._lock:
            return list(self.grants.values())
