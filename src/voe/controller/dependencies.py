"""Start and stop order inside groups, indexed once per inventory: the
reconciler asks, for each persona it decides, whether its dependencies
run and whether what depends on it has stopped, and a large level must
not cost a walk of every group for each of its members."""

from __future__ import annotations

from collections.abc import Iterable

from voe.domain.inventory import Inventory
from voe.domain.lifecycle import NOT_SERVING, State
from voe.store.runtime import PersonaState


class Dependencies:
    def __init__(self, inv: Inventory):
        self._needs: dict[str, list[str]] = {}  # member -> its dependencies in groups that are to run
        self._needs_any: dict[str, list[str]] = {}  # the same, in any group
        self._needed_by: dict[str, list[str]] = {}  # persona -> the members of any group that depend on it
        for g in inv.groups:
            for member, deps in g.depends.items():
                if g.desired == "running":
                    self._needs.setdefault(member, []).extend(deps)
                self._needs_any.setdefault(member, []).extend(deps)
                for d in deps:
                    self._needed_by.setdefault(d, []).append(member)

    def ready(self, persona: str, states: dict[str, PersonaState]) -> bool:
        """A persona may start once every dependency it has in a group that
        is to run is running (its agent reported ready). A group that is not
        to run imposes nothing: an operator starting one member alone means
        it."""
        return all(d in states and states[d].state == State.RUNNING for d in self._needs.get(persona, ()))

    def dependents_down(self, persona: str, states: dict[str, PersonaState]) -> bool:
        """For a group stop, in reverse order: a persona may stop once every
        member that depends on it has stopped."""
        return all(m not in states or states[m].state in NOT_SERVING for m in self._needed_by.get(persona, ()))

    def neighbours(self, personas: Iterable[str]) -> set[str]:
        """``personas`` with those whose next move their states decide:
        what they depend on (a stop waits for them) and what depends on
        them (a start waits for them)."""
        out = set(personas)
        for p in list(out):
            out.update(self._needs_any.get(p, ()))
            out.update(self._needed_by.get(p, ()))
        return out
