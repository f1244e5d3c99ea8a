"""The agent on Windows: its network by PowerShell, its parameters from the
boot service, its credential readable by SYSTEM and Administrators only,
and its life as a Windows service (installed with ``sc.exe``, driven by the
Service Control Manager).

Every call into Windows goes through one object, ``Windows``: commands it
runs, and the Service Control Manager's three functions (through ctypes,
standard library only). Tests on Linux replace that object and run the
rest of this module as it runs on Windows.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from voe.agent import render_windows

SERVICE = "voe-agent"
POWERSHELL = ("powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass")
SYSTEM_AND_ADMINISTRATORS = ("*S-1-5-18:F", "*S-1-5-32-544:F")
"""By SID, so the grant holds on a Windows of any language."""

# the Service Control Manager's numbers (winsvc.h)
SERVICE_WIN32_OWN_PROCESS = 0x10
SERVICE_STOPPED, SERVICE_START_PENDING, SERVICE_STOP_PENDING, SERVICE_RUNNING = 1, 2, 3, 4
SERVICE_CONTROL_STOP, SERVICE_CONTROL_INTERROGATE, SERVICE_CONTROL_SHUTDOWN = 1, 4, 5
SERVICE_ACCEPT_STOP, SERVICE_ACCEPT_SHUTDOWN = 0x1, 0x4
ERROR_SERVICE_SPECIFIC_ERROR = 1066


class WindowsCommandFailed(RuntimeError):
    """A Windows command the agent ran failed; the message names it."""


class Windows:
    """The seam: every call the agent makes into Windows."""

    def run(self, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=300)

    def start_dispatcher(self, name: str, service_main: Callable[[], None]) -> None:
        """Hand this process to the Service Control Manager, which calls
        ``service_main`` on a thread of its own; returns when it stops."""
        _advapi().dispatch(name, service_main)

    def register_handler(self, name: str, handler: Callable[[int], None]) -> object:
        return _advapi().register(name, handler)

    def set_status(self, handle: object, state: int, exit_code: int = 0, wait_hint_ms: int = 0) -> None:
        _advapi().set_status(handle, state, exit_code, wait_hint_ms)


def checked(host: Windows, argv: list[str], stdin: str | None = None) -> str:
    r = host.run(argv, stdin)
    if r.returncode != 0:
        raise WindowsCommandFailed(f"{argv[0]} {' '.join(argv[1:3])} exited {r.returncode}: "
                                   f"{(r.stderr or r.stdout).strip()[-500:]}")
    return r.stdout


def apply_network(host: Windows, root: Path, config: dict) -> Path:
    """Write the persona's network script under ``root`` and run it."""
    path = root / "network.ps1"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_windows.script(config))
    checked(host, [*POWERSHELL, "-File", str(path)])
    return path


def nic_macs(host: Windows) -> list[str]:
    """The permanent MACs of the machine's physical NICs, as voe writes them."""
    out = checked(host, [*POWERSHELL, "-Command", "Get-NetAdapter -Physical | ForEach-Object PermanentAddress"])
    macs = []
    for line in out.split():
        raw = line.replace("-", "").replace(":", "").lower()
        if len(raw) == 12:
            macs.append(":".join(raw[i:i + 2] for i in range(0, 12, 2)))
    return macs


def protect(host: Windows, path: Path) -> None:
    """Only SYSTEM and Administrators may read ``path`` (a credential)."""
    checked(host, ["icacls.exe", str(path), "/inheritance:r", "/grant:r", *SYSTEM_AND_ADMINISTRATORS])


def power_off(host: Windows) -> None:
    host.run(["shutdown.exe", "/s", "/f", "/t", "0"])


def install_commands(python: str, launcher: str, agent_args: list[str]) -> list[list[str]]:
    """``sc.exe`` commands that install the agent as an automatic service
    restarted when it fails."""
    command = subprocess.list2cmdline([python, launcher, "--service", *agent_args])
    return [
        ["sc.exe", "create", SERVICE, "binPath=", command, "start=", "auto", "DisplayName=", "voe agent"],
        ["sc.exe", "description", SERVICE, "voe: the persona's network identity and heartbeats to its controller"],
        ["sc.exe", "failure", SERVICE, "reset=", "86400", "actions=", "restart/5000/restart/5000/restart/5000"],
        ["sc.exe", "start", SERVICE],
    ]


def uninstall_commands() -> list[list[str]]:
    return [["sc.exe", "stop", SERVICE], ["sc.exe", "delete", SERVICE]]


def install_service(host: Windows, python: str, launcher: str, agent_args: list[str]) -> None:
    for argv in install_commands(python, launcher, agent_args):
        checked(host, argv)


def uninstall_service(host: Windows) -> None:
    stop, delete = uninstall_commands()
    host.run(stop)  # a stopped service answers 1062: nothing to stop
    checked(host, delete)


def run_as_service(host: Windows, agent: Callable[[threading.Event], int]) -> int:
    """Run ``agent`` as the service the Service Control Manager started: a
    stop or a shutdown sets the event ``agent`` watches (as SIGTERM does on
    Linux); its exit code is reported (non-zero as a service-specific
    error, so the recovery actions restart it)."""
    stop = threading.Event()
    outcome: dict[str, int] = {}

    def service_main() -> None:
        handle = None

        def handler(control: int) -> None:
            if control in (SERVICE_CONTROL_STOP, SERVICE_CONTROL_SHUTDOWN):
                host.set_status(handle, SERVICE_STOP_PENDING, wait_hint_ms=30_000)
                stop.set()

        handle = host.register_handler(SERVICE, handler)
        host.set_status(handle, SERVICE_RUNNING)
        code = 1
        try:
            code = agent(stop)
        finally:
            outcome["code"] = code
            host.set_status(handle, SERVICE_STOPPED, code)

    host.start_dispatcher(SERVICE, service_main)
    return outcome.get("code", 1)


@dataclass
class _Advapi:
    """advapi32 through ctypes: the part that only runs on Windows."""

    dll: object
    status_type: type
    handler_type: type
    keep: list

    def dispatch(self, name: str, service_main: Callable[[], None]) -> None:
        import ctypes

        main_type = ctypes.WINFUNCTYPE(None, ctypes.c_uint32, ctypes.c_void_p)
        main = main_type(lambda argc, argv: service_main())

        class Entry(ctypes.Structure):
            _fields_ = [("name", ctypes.c_wchar_p), ("proc", main_type)]

        table = (Entry * 2)(Entry(name, main), Entry(None, main_type()))
        self.keep.append(main)
        if not self.dll.StartServiceCtrlDispatcherW(table):
            raise WindowsCommandFailed(f"StartServiceCtrlDispatcherW failed ({ctypes.get_last_error()}): "
                                       "run with --service only as a service")

    def register(self, name: str, handler: Callable[[int], None]) -> object:
        import ctypes

        def on_control(control, event_type, event_data, context):
            handler(control)
            return 0

        callback = self.handler_type(on_control)
        self.keep.append(callback)
        self.dll.RegisterServiceCtrlHandlerExW.restype = ctypes.c_void_p
        handle = self.dll.RegisterServiceCtrlHandlerExW(name, callback, None)
        if not handle:
            raise WindowsCommandFailed(f"RegisterServiceCtrlHandlerExW failed ({ctypes.get_last_error()})")
        return handle

    def set_status(self, handle: object, state: int, exit_code: int, wait_hint_ms: int) -> None:
        import ctypes

        accepts = SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN if state == SERVICE_RUNNING else 0
        win32, specific = (ERROR_SERVICE_SPECIFIC_ERROR, exit_code) if exit_code else (0, 0)
        status = self.status_type(SERVICE_WIN32_OWN_PROCESS, state, accepts, win32, specific, 0, wait_hint_ms)
        self.dll.SetServiceStatus(ctypes.c_void_p(handle), ctypes.byref(status))


_ADVAPI: list[_Advapi] = []


def _advapi() -> _Advapi:
    if not _ADVAPI:
        import ctypes

        class Status(ctypes.Structure):
            _fields_ = [(f, ctypes.c_uint32) for f in ("type", "state", "accepts", "win32_exit", "specific_exit",
                                                         "checkpoint", "wait_hint")]

        handler_type = ctypes.WINFUNCTYPE(ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p,
                                          ctypes.c_void_p)
        _ADVAPI.append(_Advapi(ctypes.WinDLL("advapi32", use_last_error=True), Status, handler_type, []))
    return _ADVAPI[0]
