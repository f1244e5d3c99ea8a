"""NFS roots through nfs-ganesha, the userspace NFS server (this kernel, like
many container hosts, has no nfsd).

One export per persona, readable and writable by exactly the client address
of the persona's current incarnation (root not squashed: it is the persona's
root file system), at the same path for NFSv3 and NFSv4 (its pseudo path is
its path), so that ``nfs_root`` names it for either. Each export is a file ``voe-<persona>.conf`` in
``export_dir``, which ganesha's main configuration includes at start
(``%dir "<export_dir>"``), and is applied live through ganesha's DBus export
manager (``org.ganesha.nfsd.exportmgr`` AddExport / RemoveExport /
ShowExports / DisplayExport), the interface ``ganesha_mgr`` uses. The DBus
answers are also the read-back: a grant or revoke is confirmed only when
ganesha itself lists (or no longer lists) the export and its client.

Why not rewrite the file and send SIGHUP: ganesha reloads asynchronously and
says nothing back, so there would be no evidence for a fence.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from jeepney import DBusAddress, MessageType, new_method_call
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from pydantic import Field

from voe.domain.storage import Access
from voe.drivers.base import StorageDriver, StorageSettings
from voe.errors import DriverError

_MGR = DBusAddress("/org/ganesha/nfsd/ExportMgr", bus_name="org.ganesha.nfsd", interface="org.ganesha.nfsd.exportmgr")
_SAFE = re.compile(r"^[A-Za-z0-9._/:@+-]+$")


class GaneshaSettings(StorageSettings):
    export_dir: Path = Field(description="directory of voe's export files, included by ganesha's configuration")
    dbus_address: str | None = Field(default=None, description="ganesha's DBus bus, e.g. unix:path=/run/dbus/"
                                                               "system_bus_socket; the system bus when absent")
    first_export_id: int = Field(default=100, ge=1, le=65000, description="export ids voe may use start here")


def render_export(export_id: int, access: Access) -> str:
    """The EXPORT block of one persona's root. Values are checked, not
    quoted: ganesha's parser has no escape for a stray brace or semicolon."""
    for what, value in (("path", access.path), ("client", access.initiator)):
        if not _SAFE.match(value):
            raise ValueError(f"{what} {value!r} has characters an export file cannot hold")
    return (f"# voe: root of persona {access.persona}; written by voe, changes are overwritten\n"
            f"EXPORT {{\n"
            f"    Export_Id = {export_id};\n"
            f"    Path = \"{access.path}\";\n"
            f"    Pseudo = \"{access.path}\";\n"
            f"    Protocols = 3, 4;\n"
            f"    Access_Type = None;\n"
            f"    Squash = No_Root_Squash;\n"
            f"    SecType = sys;\n"
            f"    CLIENT {{ Clients = {access.initiator}; Access_Type = RW; }}\n"
            f"    FSAL {{ Name = VFS; }}\n"
            f"}}\n")


class GaneshaStorage(StorageDriver):
    protocols = frozenset({"nfs"})
    Settings = GaneshaSettings

    def __init__(self, device: str, settings: GaneshaSettings):
        super().__init__(device, settings)
        self._conn: DBusConnection | None = None
        self._lock = threading.Lock()  # one DBus call at a time on the connection

    # --- DBus -------------------------------------------------------------------

    def _call(self, operation: str, method: str, signature: str | None = None, *args):
        s: GaneshaSettings = self.settings  # type: ignore[assignment]
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = open_dbus_connection(bus=s.dbus_address or "SYSTEM")
                msg = new_method_call(_MGR, method, signature, args) if signature else new_method_call(_MGR, method)
                reply = self._conn.send_and_get_reply(msg, timeout=s.timeout)
            except (OSError, TimeoutError) as e:
                self._conn = None
                raise DriverError(self.device, operation, f"ganesha's DBus is unreachable: {e}", transient=True) from None
        if reply.header.message_type == MessageType.error:
            raise DriverError(self.device, operation, " ".join(map(str, reply.body)) or "DBus error")
        return reply.body

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def exports(self) -> dict[int, tuple[str, list[str]]]:
        """Export id -> (path, client specs), as ganesha holds them now."""
        def read() -> dict[int, tuple[str, list[str]]]:
            out = {}
            for entry in self._call("list exports", "ShowExports")[1]:
                export_id, path = entry[0], entry[1]
                body = self._call(f"read export {export_id}", "DisplayExport", "q", export_id)
                out[export_id] = (path, [c[0] for c in body[4]])
            return out
        return self._read("list exports", read)

    def check(self) -> str:
        return f"ganesha answers on DBus: {len(self.exports())} export(s)"

    # --- grants -------------------------------------------------------------------

    def _file(self, persona: str) -> Path:
        return Path(self.settings.export_dir) / f"voe-{persona}.conf"  # type: ignore[attr-defined]

    def _id_of(self, path: str, exports: dict[int, tuple[str, list[str]]]) -> int | None:
        return next((i for i, (p, _) in exports.items() if p == path), None)

    def _grant(self, access: Access) -> None:
        exports = self.exports()
        export_id = self._id_of(access.path, exports)
        if export_id is not None and _clients_are(exports[export_id][1], access.initiator):
            return
        if export_id is not None:  # another client: the old incarnation's access goes first
            self._call(f"remove export {export_id}", "RemoveExport", "q", export_id)
        else:
            export_id = max([self.settings.first_export_id - 1, *exports], default=0) + 1  # type: ignore[attr-defined]
        f = self._file(access.persona)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(render_export(export_id, access))
        self._call(f"export {access.path} to {access.initiator}", "AddExport", "ss", str(f),
                   f"EXPORT(Export_Id={export_id})")
        self._confirm(f"grant {access.persona}", self.exports,
                      lambda seen: export_id in seen and _clients_are(seen[export_id][1], access.initiator))

    def _revoke(self, access: Access) -> None:
        export_id = self._id_of(access.path, self.exports())
        if export_id is not None:
            self._call(f"remove export {export_id}", "RemoveExport", "q", export_id)
        self._file(access.persona).unlink(missing_ok=True)
        self._confirm(f"revoke {access.persona}", self.exports,
                      lambda seen: self._id_of(access.path, seen) is None)

    def grants(self) -> list[Access]:
        return [Access(persona=_persona_of(path, self.settings.export_dir), kind="nfs", path=path,  # type: ignore[attr-defined]
                       initiator=client.removesuffix("/32"))
                for path, clients in self.exports().values() for client in clients]


def _clients_are(clients: list[str], initiator: str) -> bool:
    return [c.removesuffix("/32") for c in clients] == [initiator]


def _persona_of(path: str, export_dir: Path) -> str:
    for f in Path(export_dir).glob("voe-*.conf"):
        if f'Path = "{path}";' in f.read_text():
            return f.stem.removeprefix("voe-")
    return ""


