"""The truth checker flags exactly the moments that break the invariant."""

from __future__ import annotations

from voe.lab.truth import IncarnationTruth, InvariantChecker, violations


def inc(gen: int, state: str = "running", isolated: bool = False, machine: str = "m") -> IncarnationTruth:
    return IncarnationTruth("web-1", gen, f"{machine}{gen}", 100 + gen, state, isolated, "")


def test_two_live_incarnations_of_one_persona_break_the_invariant():
    found = violations([inc(1), inc(2)])
    assert len(found) == 1 and found[0]["persona"] == "web-1"
    assert [i["generation"] for i in found[0]["incarnations"]] == [1, 2]


def test_a_frozen_incarnation_still_counts_as_alive():
    assert violations([inc(1, "frozen"), inc(2)])


def test_dead_or_isolated_incarnations_do_not_count():
    assert violations([inc(1, "dead"), inc(2)]) == []
    assert violations([inc(1, "frozen", isolated=True), inc(2)]) == []


def test_the_checker_records_a_deliberate_violation_while_sampling():
    world = [inc(1)]
    checker = InvariantChecker(lambda: list(world), interval=0.01).start()
    world.append(inc(2))  # break the invariant on purpose
    checker.poke()
    import time

    deadline = time.monotonic() + 2
    while not checker.seen and time.monotonic() < deadline:
        time.sleep(0.01)
    checker.stop()
    assert checker.seen and checker.seen[0]["persona"] == "web-1"
