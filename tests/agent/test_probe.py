"""The persona's network probe, on this machine: over a serial line it
lists the kernel's interfaces, sends a UDP probe and says which
interface a probe arrived on."""

from __future__ import annotations

import json
import os
import threading
import time
import tty

import pytest

from voe.agent import probe, system


def ask(master: int, request: dict) -> dict:
    os.write(master, json.dumps(request).encode() + b"\n")
    answer = b""
    deadline = time.monotonic() + 5
    while not answer.endswith(b"\n") and time.monotonic() < deadline:
        answer += os.read(master, 65536)
    return json.loads(answer)


def test_it_answers_over_a_serial_line_with_what_arrived_where(capsys):
    master, slave = os.openpty()
    tty.setraw(slave)
    threading.Thread(target=probe.serve, args=(os.ttyname(slave),), daemon=True).start()
    names = {i["name"] for i in ask(master, {"op": "interfaces"})["interfaces"]}
    assert names and "lo" not in names  # the kernel's own list, loopback left out
    assert f"voe-probe answering on {os.ttyname(slave)}" in capsys.readouterr().out  # on the console: since when
    assert ask(master, {"op": "send", "to": "127.0.0.1", "token": "t-1"}) == {"sent": True}
    deadline = time.monotonic() + 5
    while not (heard := ask(master, {"op": "heard"})["heard"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert heard == [{"token": "t-1", "from": "127.0.0.1", "interface": "lo"}]
    assert "error" in ask(master, {"op": "send", "to": "not an address", "token": "t-2"})
    assert ask(master, {"op": "reboot"}) == {"error": "unknown op 'reboot': interfaces, send or heard"}


def test_an_answer_repeats_its_requests_id_and_a_failure_of_any_kind_is_an_answer(monkeypatch):
    listening = probe.Probe(port=0)
    assert listening.answer({"op": "heard", "id": "a1"}) == {"heard": [], "id": "a1"}

    def broken():
        raise RuntimeError("netlink said something unexpected")

    monkeypatch.setattr(system, "interfaces", broken)  # the probe lives on to answer the next request
    assert listening.answer({"op": "interfaces", "id": "a2"}) == {
        "error": "interfaces: RuntimeError: netlink said something unexpected", "id": "a2"}


def test_a_dump_the_kernel_interrupted_is_asked_again(monkeypatch):
    from voe.agent.netlink import DumpInterrupted

    answers = iter([DumpInterrupted(), DumpInterrupted(), [{"name": "eth0"}]])

    def dump():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(system, "_interfaces", dump)
    assert system.interfaces() == [{"name": "eth0"}]
    monkeypatch.setattr(system, "_interfaces", lambda: (_ for _ in ()).throw(DumpInterrupted()))
    with pytest.raises(DumpInterrupted):  # a kernel whose links never hold still: said, not hidden
        system.interfaces()
