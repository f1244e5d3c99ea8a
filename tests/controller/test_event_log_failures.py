"""Recording what happened never stops what happens: an event the store
refuses (out of reach during a PostgreSQL restart, or this term deposed)
goes to the process log, and the caller (a device watch's loop, a step's
error handler) goes on. A watch whose failure could not be recorded once
ended its thread, and the leader went on leading without it."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from sqlalchemy.exc import OperationalError

from voe.controller.context import Ctx


def test_an_event_the_store_refuses_goes_to_the_process_log(caplog):
    def refused(*a, **k):
        raise OperationalError("INSERT INTO events", {}, Exception("connection refused"))

    ctx = SimpleNamespace(services=SimpleNamespace(events=SimpleNamespace(append=refused)))
    with caplog.at_level(logging.WARNING, logger="voe.controller"):
        Ctx.log(ctx, "error", "controller", "switch watch pass failed: boom")  # type: ignore[arg-type]
    assert "switch watch pass failed: boom" in caplog.text and "could not record" in caplog.text
