"""The indexed fast path must agree with the plain filter scan: whatever it
picks passes every filter, and it refuses only when no machine does; pack
picks the fullest machine that fits."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from voe.domain.placement import Constraint, Placer, _score, rule_out

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from placement import datacenter, personas


@pytest.mark.parametrize("seed", range(6))
def test_fast_path_matches_the_full_scan(seed):
    rng = random.Random(seed)
    machines = datacenter(120, rng)
    placer = Placer(machines)
    for p in personas(400, rng):
        c = Constraint(avoid_host=f"hv{rng.randrange(120)}") if rng.random() < 0.1 else Constraint()
        fitting = {k: [m for m in placer.by_kind[k] if rule_out(p, m, c) is None] for k in ("vm", "physical")}
        scores = {m.host: _score(p, m) for k in fitting for m in fitting[k]}
        d = placer.place(p, c, explain=False)
        if not d.ok:
            assert not any(fitting[k] for k in p.policy.prefer), p.name
            continue
        kind = d.machine.kind
        assert fitting[kind], p.name
        first_kind = next(k for k in p.policy.prefer if fitting[k])
        assert kind == first_kind, "the preference order decides the kind"
        # as good as the best (ties between equally full machines may go either way)
        assert scores[d.machine.host][0] == min(scores[m.host][0] for m in fitting[kind])
