"""From when a leader counts a persona's silence, by the controller its
newest beat came through: its own agents' and a live follower's at once;
the previous leader's from the takeover, for as long as its agents take to
beat elsewhere; a quiet follower's (paused, cut off) from when its relay
went quiet plus that time. A persona must not be fenced because the
controller its agent beats to stopped passing its beats on."""

from __future__ import annotations

from datetime import timedelta

from tests.controller.conftest import watching
from voe.controller.reconciler import QUIET_RELAY, Reconciler
from voe.controller.timing import CONTROLLER_QUIET
from voe.store.time import now


def test_a_silence_counts_from_when_the_beat_could_have_come_through(services, monkeypatch):
    with watching(services) as ctx:
        reconciler = Reconciler(ctx)
        t = now()
        moving = timedelta(seconds=CONTROLLER_QUIET + ctx.pace.interval)
        reconciler._grace_from = t - timedelta(seconds=30)  # heard whole long since
        took_over = t - timedelta(seconds=0.2)
        reconciler._grace_via = {"c0": took_over}  # as ``lead(term, previous="c0")`` leaves it
        relayed = {"c0": took_over - timedelta(seconds=0.1), "c1": t - timedelta(seconds=QUIET_RELAY / 3),
                   "c2": t - timedelta(seconds=0.5)}
        monkeypatch.setattr(ctx.runtime.beats, "relayed_at", relayed.get)

        def grace(via):
            return reconciler._grace_for({"via": via}, t)

        assert grace(None) == reconciler._grace_from  # heard by this controller itself
        assert reconciler._grace_for(None, t) == reconciler._grace_from  # no beat at all
        assert grace("c1") == reconciler._grace_from  # a follower relaying still
        assert grace("c0") == took_over  # the previous leader's agents: from the takeover
        assert grace("c2") == relayed["c2"] + moving  # a follower gone quiet: its agents are moving
        later = t + moving + timedelta(seconds=0.1)  # the previous leader's agents have all moved by now
        assert reconciler._grace_for({"via": "c0"}, later) == relayed["c0"] + moving
