"""The persona lifecycle: every state, every event, every transition, in one
table (as Ironic's ``states.py``). The reconciler may only move a persona
along an edge of this table; a test walks it.

The safety invariant of docs/design.md is structural here: the only edges into
``placing`` (which creates a new incarnation) leave ``stopped``, ``waiting``,
``pending``, ``fenced`` and ``failed``: states in which the previous
incarnation, if any, has ended with positive evidence that it cannot run.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal


class State(str, Enum):
    STOPPED = "stopped"          # no incarnation runs; the last one ended with evidence
    WAITING = "waiting"          # desired running; its group dependencies are not ready yet
    PENDING = "pending"          # desired running; no machine fits now (reason recorded)
    PLACING = "placing"          # a machine is chosen and a new incarnation recorded
    POWERING_ON = "powering-on"  # switch ports, boot script, boot device, power / VM start
    BOOTING = "booting"          # powered; waiting for the agent to report ready
    RUNNING = "running"          # the agent of the current generation heartbeats, ready
    STOPPING = "stopping"        # agent asked to stop, then soft-off, then hard-off, confirmed
    SUSPECT = "suspect"          # heartbeats missed; cross-checking power / VM state
    FENCING = "fencing"          # obtaining evidence the incarnation cannot run (fence levels)
    FENCED = "fenced"            # evidence held; the incarnation is over
    BLOCKED = "blocked"          # no fence level gave evidence: an operator must confirm
    FAILED = "failed"            # its starts kept failing (reasons recorded): an operator's start retries


class Event(str, Enum):
    START = "start"                    # desired becomes running
    DEPENDENCIES_PENDING = "dependencies-pending"
    DEPENDENCIES_READY = "dependencies-ready"
    PLACED = "placed"
    UNPLACEABLE = "unplaceable"
    POWERED = "powered"                # machine powered on / VM started, confirmed
    AGENT_READY = "agent-ready"
    STOP = "stop"                      # desired becomes stopped, or a move begins
    OFF_CONFIRMED = "off-confirmed"    # power or VM state reads off after a stop
    HEARTBEAT_MISSED = "heartbeat-missed"
    HEARTBEAT_RESUMED = "heartbeat-resumed"
    FAILED = "failed"                  # a start or stop step failed, or boot timed out
    NOT_STARTED = "not-started"        # a start failed before anything could boot the incarnation
    CONFIRM_SUSPECT = "confirm-suspect"
    FENCE_SUCCEEDED = "fence-succeeded"
    FENCE_FAILED = "fence-failed"      # every level failed
    OPERATOR_CONFIRMED_DEAD = "operator-confirmed-dead"
    RETARGET = "retarget"              # fenced and still desired running
    GIVE_UP = "give-up"                # its starts failed too often: no new incarnation until asked
    SETTLE = "settle"                  # fenced and desired stopped


S, E = State, Event

TRANSITIONS: dict[tuple[State, Event], State] = {
    (S.STOPPED, E.START): S.PLACING,
    (S.STOPPED, E.DEPENDENCIES_PENDING): S.WAITING,
    (S.WAITING, E.DEPENDENCIES_READY): S.PLACING,
    (S.WAITING, E.STOP): S.STOPPED,
    (S.PENDING, E.START): S.PLACING,
    (S.PENDING, E.STOP): S.STOPPED,
    (S.PENDING, E.DEPENDENCIES_PENDING): S.WAITING,
    (S.PLACING, E.PLACED): S.POWERING_ON,
    (S.PLACING, E.UNPLACEABLE): S.PENDING,
    (S.PLACING, E.STOP): S.STOPPED,
    (S.POWERING_ON, E.POWERED): S.BOOTING,
    (S.POWERING_ON, E.FAILED): S.FENCING,
    (S.POWERING_ON, E.NOT_STARTED): S.PENDING,
    (S.POWERING_ON, E.GIVE_UP): S.FAILED,
    (S.POWERING_ON, E.STOP): S.STOPPING,
    (S.BOOTING, E.AGENT_READY): S.RUNNING,
    (S.BOOTING, E.FAILED): S.FENCING,
    (S.BOOTING, E.STOP): S.STOPPING,
    (S.BOOTING, E.HEARTBEAT_MISSED): S.SUSPECT,
    (S.RUNNING, E.STOP): S.STOPPING,
    (S.RUNNING, E.HEARTBEAT_MISSED): S.SUSPECT,
    (S.SUSPECT, E.HEARTBEAT_RESUMED): S.RUNNING,
    (S.SUSPECT, E.CONFIRM_SUSPECT): S.FENCING,
    (S.SUSPECT, E.STOP): S.STOPPING,
    (S.STOPPING, E.OFF_CONFIRMED): S.STOPPED,
    (S.STOPPING, E.FAILED): S.FENCING,
    (S.FENCING, E.FENCE_SUCCEEDED): S.FENCED,
    (S.FENCING, E.FENCE_FAILED): S.BLOCKED,
    (S.FENCED, E.RETARGET): S.PLACING,
    (S.FENCED, E.SETTLE): S.STOPPED,
    (S.FENCED, E.GIVE_UP): S.FAILED,
    (S.FAILED, E.START): S.PLACING,
    (S.FAILED, E.STOP): S.STOPPED,
    (S.BLOCKED, E.OPERATOR_CONFIRMED_DEAD): S.FENCED,
}

LIVE_STATES = frozenset({S.POWERING_ON, S.BOOTING, S.RUNNING, S.STOPPING, S.SUSPECT, S.FENCING, S.BLOCKED})
"""States in which an incarnation may be alive: it holds its machine, and
no other incarnation of the persona may be created."""
QUIET_STATES = frozenset({S.STOPPED, S.WAITING, S.PENDING, S.PLACING, S.FENCED, S.FAILED})
"""States with no incarnation that could run."""
NOT_SERVING = frozenset({S.STOPPED, S.WAITING, S.PENDING, S.FENCED, S.BLOCKED, S.FAILED})
"""States in which a persona no longer serves what depends on it: a group
stops a persona only after its dependents reached one."""
BEATING = frozenset({S.BOOTING, S.RUNNING, S.SUSPECT, S.STOPPING})
"""States in which a persona's agent may be beating: the heartbeat pace
counts them."""
RESERVING = frozenset({S.WAITING, S.PLACING})
"""A group start's plan holds its server, or its slot on a hypervisor
host, until the persona is placed."""
STARTING = frozenset({S.PLACING, S.POWERING_ON})
"""Being placed or powered on: work done ahead for later starts waits
while any persona is here."""

BootStage = Literal["script", "kernel", "root", "config"]
BOOT_STAGES: tuple[BootStage, ...] = ("script", "kernel", "root", "config")
"""A network boot's stages, in order: the machine's firmware fetched its
iPXE script, then its kernel, then its root (a Linux persona's NFS root),
and the agent its configuration. A machine records only those it passes
through voe (a SAN boot fetches no kernel)."""
BOOT_STAGE_DONE = {"script": "its machine fetched its boot script", "kernel": "its machine fetched its kernel",
                   "root": "its machine mounted its root", "config": "its agent fetched its configuration"}


class IllegalTransition(Exception):
    def __init__(self, state: State, event: Event):
        self.state, self.event = state, event
        super().__init__(f"no transition from {state.value} on {event.value}")


def next_state(state: State, event: Event) -> State:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(state, event) from None


def events_from(state: State) -> list[Event]:
    return [e for (s, e) in TRANSITIONS if s == state]
