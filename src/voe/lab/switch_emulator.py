"""An emulated managed switch: a real SNMP agent (pysnmp's engine, v2c and
v3 authPriv) on its own UDP port, answering from a ``SwitchState``.

All switches of a lab share one asyncio loop in one thread; net-snmp's
``snmpwalk``/``snmpget``/``snmpset`` and voe's driver talk to them alike.
"""

from __future__ import annotations

import asyncio
import threading

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import cmdrsp, context

from voe.domain.models import Switch
from voe.lab.snmp_mib import SwitchMib
from voe.lab.switch_state import SwitchState

AUTH = {"sha": config.USM_AUTH_HMAC96_SHA, "md5": config.USM_AUTH_HMAC96_MD5,
        "sha256": config.USM_AUTH_HMAC192_SHA256}
PRIV = {"aes": config.USM_PRIV_CFB128_AES, "des": config.USM_PRIV_CBC56_DES}
MIB_2 = (1, 3, 6, 1, 2, 1)


class SnmpLoop:
    """One event loop thread for every switch agent of the lab."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="lab-snmp", daemon=True)
        self.thread.start()

    def call(self, fn, *args):
        """Run ``fn`` on the loop thread and return its result."""
        async def run():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class SwitchEmulator:
    def __init__(self, switch: Switch, address: str, port: int, community: str = "private",
                 v3: dict | None = None, cabled_ports: set[str] | None = None, loop: SnmpLoop | None = None):
        self.switch = switch
        self.address, self.port = address, port
        self.community = community
        self.v3 = v3
        self.state = SwitchState(switch.name, [p.name for p in switch.ports], cabled_ports)
        self._own_loop = loop is None
        self.loop = loop or SnmpLoop()
        self._engine: engine.SnmpEngine | None = None

    def start(self) -> None:
        self.loop.call(self._start)

    def _start(self) -> None:
        e = engine.SnmpEngine()
        config.add_transport(e, udp.DOMAIN_NAME, udp.UdpTransport().open_server_mode((self.address, self.port)))
        config.add_v1_system(e, "voe-lab", self.community)
        config.add_vacm_user(e, 2, "voe-lab", "noAuthNoPriv", MIB_2, MIB_2)
        if self.v3:
            config.add_v3_user(e, self.v3["user"], AUTH[self.v3.get("auth_protocol", "sha")], self.v3["auth_key"],
                               PRIV[self.v3.get("priv_protocol", "aes")], self.v3["priv_key"])
            config.add_vacm_user(e, 3, self.v3["user"], "authPriv", MIB_2, MIB_2)
        ctx = context.SnmpContext(e)
        ctx.context_names[b""] = SwitchMib(self.state, f"voe lab switch {self.switch.name} ({self.switch.model or 'Q-BRIDGE'})")
        for responder in (cmdrsp.GetCommandResponder, cmdrsp.NextCommandResponder,
                          cmdrsp.BulkCommandResponder, cmdrsp.SetCommandResponder):
            responder(e, ctx)
        e.transport_dispatcher.job_started(1)
        self._engine = e

    def set_down(self, down: bool) -> None:
        """Switch down: it stops answering SNMP and forwards nothing."""
        if down == self.state.down:
            return
        self.state.set_down(down)
        if down:
            self.loop.call(self._close)
        else:
            self.start()

    def _close(self) -> None:
        if self._engine is not None:
            self._engine.transport_dispatcher.close_dispatcher()
            self._engine = None

    def stop(self) -> None:
        self.loop.call(self._close)
        if self._own_loop:
            self.loop.stop()
