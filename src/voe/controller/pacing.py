"""How often agents are told to beat. Every beat costs the controller a
request; a thousand agents beating every quarter second would take all of
it, and a controller too busy to answer beats sees healthy personas as
silent and fences them. So, as Nomad paces its clients
(``max_heartbeats_per_second``), the interval told grows with the number of
agents beating, keeping their beats within ``Timing.max_heartbeats_per_second``.

Suspicion follows what each agent was told: a persona is silent too long
after the misses allowed of the longer of the interval in its last answer
and the interval told now. Never shorter than what it was told, so a
growing pace cannot make a healthy agent look silent; an agent learns a
new pace from its next answer, and until then beats more often, not less.
"""

from __future__ import annotations

from voe.controller.timing import Timing


class BeatPace:
    def __init__(self, timing: Timing):
        self.timing = timing
        self.interval = timing.heartbeat_interval  # what agents are told now

    def follow(self, beating: int) -> None:
        """The pace for ``beating`` agents (the reconciler counts them at each full pass)."""
        self.interval = max(self.timing.heartbeat_interval, beating / self.timing.max_heartbeats_per_second)

    def interval_for(self, told: float | None) -> float:
        """The interval by which a persona whose last answer said ``told``
        (None: not known, e.g. beats from before a restart) beats again."""
        return max(told or 0.0, self.interval)

    def silence_limit(self, told: float | None) -> float:
        """How long such a persona may stay silent before it is suspect."""
        return self.interval_for(told) * (self.timing.heartbeat_misses + 1)

    def lease(self) -> float:
        """What an agent's watchdog lease lasts, told with ``interval``:
        the silence limit of an agent told just that, so it stops itself
        no later than the controller suspects it."""
        return self.interval * (self.timing.heartbeat_misses + 1)
