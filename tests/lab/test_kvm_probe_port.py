"""The lab asks a guest's network probe over the machine's virtio-serial
port, a connection per request, sent once more on a new connection when
one closes unanswered. A guest that answers after its asker gave up hands
that answer to the next connection: the next asker passes over it, by
its id, and waits for its own."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from voe.lab import kvm
from voe.lab.kvm import KvmError, ask_probe


def guest(path, *answers):
    """A port that, for each of ``answers`` in turn, takes one connection,
    reads the request, writes what ``answers(request)`` gives (lines) and
    hangs up; then it is gone."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve():
        with server:
            for answer in answers:
                conn, _ = server.accept()
                with conn:
                    request = json.loads(conn.makefile("rb").readline())
                    for line in answer(request):
                        conn.sendall(line)
                    conn.shutdown(socket.SHUT_WR)
                    conn.recv(1)  # until the asker hangs up

    threading.Thread(target=serve, daemon=True).start()


def test_a_late_answer_to_an_earlier_request_is_passed_over(tmp_path):
    port = tmp_path / "probe.sock"

    def late_then_own(request):
        own = json.dumps({"interfaces": [], "id": request["id"]}).encode() + b"\n"
        return [b'{"heard": [], "id": "an-earlier-asker"}\n' + own[:8], own[8:]]  # the own answer split

    guest(port, late_then_own)
    assert ask_probe("kvm-1", port, {"op": "interfaces"}, tmp_path / "serial.log") == {"interfaces": []}


def test_a_request_whose_connection_closes_unanswered_is_sent_again_on_another(tmp_path, caplog):
    port = tmp_path / "probe.sock"
    guest(port, lambda r: [], lambda r: [json.dumps({"heard": [], "id": r["id"]}).encode() + b"\n"])
    assert ask_probe("kvm-1", port, {"op": "heard"}, tmp_path / "serial.log") == {"heard": []}
    assert "kvm-1: the network probe's port closed without an answer to heard (connection 1 of 2)" in caplog.text


def test_a_port_that_closes_unanswered_each_time_means_the_machine_went(tmp_path):
    port = tmp_path / "probe.sock"
    guest(port, *[lambda r: []] * kvm.PROBE_CONNECTIONS)
    with pytest.raises(KvmError, match="kvm-1: the network probe's port closed without an answer to heard, 2 times"):
        ask_probe("kvm-1", port, {"op": "heard"}, tmp_path / "serial.log")


def test_a_silent_probe_is_an_error_naming_the_machine_and_request_and_quoting_its_console(tmp_path, monkeypatch):
    monkeypatch.setattr(kvm, "PROBE_PATIENCE", 0.3)
    port = tmp_path / "probe.sock"
    (tmp_path / "serial.log").write_text("[    0.000000] Linux version 6.1.0-57-amd64\n"
                                         "[   31.600499] systemd[1]: Started voe-probe.service - voe network probe.\n")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(port))
    server.listen(1)
    with server, pytest.raises(KvmError) as failed:
        ask_probe("kvm-2", port, {"op": "send", "to": "10.0.2.12", "token": "t"}, tmp_path / "serial.log")
    assert str(failed.value) == ("kvm-2: the network probe did not answer send: timed out; its console: "
                                 "[   31.600499] systemd[1]: Started voe-probe.service - voe network probe.")
