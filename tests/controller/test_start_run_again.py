"""A start is run again from its recorded state when its controller died
half way through it; running it again must leave a machine that already
booted from the first run able to carry on."""

from __future__ import annotations

import pytest

from tests.controller.conftest import watching
from voe.controller import start


@pytest.fixture
def ctx(services, review_switches):
    with watching(services) as ctx:
        yield ctx


def test_a_start_run_again_keeps_the_boot_credential_a_machine_may_hold(ctx):
    """A controller killed after a start registered its boot script runs
    the start again: the agent that booted from the first script must still
    get its credential, so the script and its bootstrap token stay as they
    were."""
    inv = ctx.inventory()
    web = inv.by_name("personas")["web-1"]
    ctx.runtime.begin_incarnation("web-1", "vm", "dl360-1", "web-1", "02:56:4f:00:00:07", "test")
    inc = ctx.runtime.current("web-1")
    where = {"persona": "web-1", "host": "dl360-1"}
    ctx.runtime.commits.run(lambda c: start._register_boot(ctx, web, inc, where, c))
    first = ctx.runtime.boot_target(inc.boot_mac).script
    token = next(w.split("=", 1)[1] for w in first.split() if w.startswith("voe.token="))
    ctx.runtime.commits.run(lambda c: start._register_boot(ctx, web, inc, where, c))
    assert ctx.runtime.boot_target(inc.boot_mac).script == first
    credential = ctx.services.tokens.redeem(token, "web-1", inc.generation)
    assert credential is not None
    assert ctx.services.tokens.authenticate(credential).persona == "web-1"
