"""iSCSI LUNs through tgt, the userspace SCSI target (``tgtd``), driven by
its own admin tool ``tgtadm`` over tgtd's management socket.

One target per persona (its IQN is the persona's ``image.target_iqn``), LUN
``image.lun`` backed by the persona's disk image, and an ACL holding exactly
the initiator IQN of the persona's current incarnation. Revoking unbinds
that IQN *and* closes its open connections, because an ACL only stops new
logins: an old incarnation that is still logged in would keep writing.
Every change is confirmed by reading the target back from tgtd.

tgt rather than LIO: LIO lives in the kernel (configfs), which containers and
this lab's machines do not offer; tgt runs anywhere as a process.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field

from pydantic import Field

from voe.domain.storage import Access
from voe.drivers.base import StorageDriver, StorageSettings
from voe.errors import DriverError, DriverTimeout


class TgtSettings(StorageSettings):
    control_port: int | None = Field(default=None, ge=0, le=65535,
                                     description="tgtd's management port (tgtd -C N); the default socket when absent")
    tgtadm: str = Field(default="tgtadm", description="path of the tgtadm binary")


@dataclass
class Target:
    """One target as tgtd reports it."""

    tid: int
    iqn: str
    luns: dict[int, str] = field(default_factory=dict)  # LUN -> backing store path
    acl: set[str] = field(default_factory=set)  # initiator names and addresses
    nexus: dict[int, str] = field(default_factory=dict)  # I_T nexus (session) id -> initiator
    connections: dict[int, list[int]] = field(default_factory=dict)  # session id -> connection ids


_TARGET = re.compile(r"^Target (\d+): (\S+)$")


def parse_show(text: str) -> dict[str, Target]:
    """``tgtadm --mode target --op show``, by target IQN."""
    targets: dict[str, Target] = {}
    current: Target | None = None
    section = ""
    lun: int | None = None
    nexus: int | None = None
    for raw in text.splitlines():
        line = raw.strip()
        m = _TARGET.match(raw)
        if m:
            current = Target(int(m.group(1)), m.group(2))
            targets[current.iqn] = current
            section = ""
            continue
        if current is None or not line:
            continue
        if line.endswith("information:"):
            section = line
            continue
        key, _, value = line.partition(":")
        value = value.strip()
        if section.startswith("LUN") and key == "LUN":
            lun = int(value)
        elif section.startswith("LUN") and key == "Backing store path" and lun is not None and value != "None":
            current.luns[lun] = value
        elif section.startswith("I_T nexus") and key == "I_T nexus":
            nexus = int(value)
        elif section.startswith("I_T nexus") and key == "Initiator" and nexus is not None:
            current.nexus[nexus] = value.split()[0]
        elif section.startswith("I_T nexus") and key == "Connection" and nexus is not None:
            current.connections.setdefault(nexus, []).append(int(value))
        elif section.startswith("ACL"):
            current.acl.add(line)
    return targets


class TgtStorage(StorageDriver):
    protocols = frozenset({"iscsi"})
    Settings = TgtSettings

    def _adm(self, operation: str, *args: str) -> str:
        s: TgtSettings = self.settings  # type: ignore[assignment]
        cmd = [s.tgtadm, *(["-C", str(s.control_port)] if s.control_port is not None else []), "--lld", "iscsi", *args]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=s.timeout)
        except subprocess.TimeoutExpired:
            raise DriverTimeout(self.device, operation, s.timeout) from None
        except FileNotFoundError:
            raise DriverError(self.device, operation, f"{s.tgtadm} is not installed (Debian package tgt)") from None
        if r.returncode != 0:
            cause = r.stderr.strip() or r.stdout.strip() or f"tgtadm exited {r.returncode}"
            raise DriverError(self.device, operation, cause, transient="can't connect" in cause or "connect to" in cause)
        return r.stdout

    def targets(self) -> dict[str, Target]:
        return self._read("show targets", lambda: parse_show(self._adm("show targets", "--mode", "target", "--op", "show")))

    def check(self) -> str:
        return f"tgtd answers: {len(self.targets())} target(s)"

    def _target(self, access: Access) -> Target:
        if not access.target:
            raise DriverError(self.device, f"grant {access.persona}", "an iSCSI access names its target IQN")
        found = self.targets().get(access.target)
        if found is not None:
            return found
        tid = max((t.tid for t in self.targets().values()), default=0) + 1
        self._adm(f"create target {access.target}", "--mode", "target", "--op", "new", "--tid", str(tid),
                  "--targetname", access.target)
        return Target(tid, access.target)

    def _grant(self, access: Access) -> None:
        t = self._target(access)
        if access.lun not in t.luns:
            self._adm(f"add LUN {access.lun} to {access.target}", "--mode", "logicalunit", "--op", "new", "--tid",
                      str(t.tid), "--lun", str(access.lun), "--backing-store", access.path)
        elif t.luns[access.lun] != access.path:
            raise DriverError(self.device, f"grant {access.persona}",
                              f"{access.target} LUN {access.lun} is backed by {t.luns[access.lun]}, not {access.path}")
        for other in t.acl - {access.initiator}:  # one incarnation at a time
            self._unbind(t, other)
        if access.initiator not in t.acl:
            self._adm(f"allow {access.initiator} on {access.target}", "--mode", "target", "--op", "bind", "--tid",
                      str(t.tid), "--initiator-name", access.initiator)
        self._confirm(f"grant {access.persona}", lambda: self.targets().get(access.target),
                      lambda seen: seen is not None and seen.acl == {access.initiator} and access.lun in seen.luns)

    def _unbind(self, t: Target, initiator: str) -> None:
        self._adm(f"refuse {initiator} on {t.iqn}", "--mode", "target", "--op", "unbind", "--tid", str(t.tid),
                  "--initiator-name", initiator)
        for sid, who in t.nexus.items():
            if who != initiator:
                continue
            for cid in t.connections.get(sid, [0]):  # an ACL stops logins, not sessions already open
                self._adm(f"close connection {sid}/{cid} of {initiator}", "--mode", "conn", "--op", "delete",
                          "--tid", str(t.tid), "--sid", str(sid), "--cid", str(cid))

    def _revoke(self, access: Access) -> None:
        t = self.targets().get(access.target or "")
        if t is not None and (access.initiator in t.acl or access.initiator in t.nexus.values()):
            self._unbind(t, access.initiator)
        self._confirm(f"revoke {access.persona}", lambda: self.targets().get(access.target or ""),
                      lambda seen: seen is None or (access.initiator not in seen.acl
                                                    and access.initiator not in seen.nexus.values()))

    def grants(self) -> list[Access]:
        return [Access(persona="", kind="iscsi", path=t.luns.get(lun, ""), initiator=who, target=t.iqn, lun=lun)
                for t in self.targets().values() for who in sorted(t.acl) for lun in sorted(t.luns)]
