"""pyghmi waits for a reply by registering with its I/O thread after
sending, and any caller's thread handles any session's replies: a reply
handled before its waiter registered wakes no one. The mended wait never
sleeps long with an answer in hand (in the lab, most of twenty concurrent
logins did, for half a second to a second each)."""

from __future__ import annotations

import types

import pytest
from pyghmi.ipmi.private import session as pyghmi_session

from voe.drivers.power import pyghmi_mends

BMC = ("::ffff:192.0.2.1", 623, 0, 0)


@pytest.fixture
def waits(monkeypatch):
    asked: list[float] = []
    monkeypatch.setattr(pyghmi_mends, "_pyghmi_io_wait", lambda timeout, myaddr=None, evq=None: asked.append(timeout))
    return asked


def with_session(monkeypatch, **state) -> None:
    session = types.SimpleNamespace(broken=False, pktqueue=[], awaitingresponse=False, lastresponse=None)
    vars(session).update(state)
    monkeypatch.setitem(pyghmi_session.Session.bmc_handlers, BMC, {40000: session})


def test_a_waiter_whose_reply_another_thread_handled_does_not_sleep(monkeypatch, waits):
    with_session(monkeypatch, awaitingresponse=True, lastresponse={"netfn": 1, "command": 1, "data": []})
    pyghmi_session._io_wait(1.0, BMC)
    assert waits == [pyghmi_mends.QUEUED_WAIT]


def test_a_waiter_whose_reply_is_queued_does_not_sleep(monkeypatch, waits):
    with_session(monkeypatch, pktqueue=[b"reply"])
    pyghmi_session._io_wait(1.0, BMC)
    assert waits == [pyghmi_mends.QUEUED_WAIT]


def test_a_waiter_still_without_a_reply_looks_again_within_a_slice(monkeypatch, waits):
    with_session(monkeypatch, awaitingresponse=True)
    pyghmi_session._io_wait(1.0, BMC)
    pyghmi_session._io_wait(0.01, BMC)
    assert waits == [pyghmi_mends.WAIT_SLICE, 0.01]


def test_a_broken_session_is_no_answer(monkeypatch, waits):
    with_session(monkeypatch, broken=True, pktqueue=[b"reply"])
    pyghmi_session._io_wait(1.0, BMC)
    assert waits == [pyghmi_mends.WAIT_SLICE]
