"""Settings of a long-running voe process (the controller, the lab), made
once at its start."""

from __future__ import annotations

import gc
import resource

KEEP_ALIVE = 150
"""Seconds an idle connection is kept open. Agents keep theirs from beat to
beat (see ``voe.agent.client``), and paced at a thousand personas they beat
every 10 s, at ten thousand every 100 s: closed at uvicorn's default of 5 s,
every beat would open a connection again."""

YOUNG_OBJECTS = 20_000
"""Allocations (net of frees) between collections of the youngest
generation: Python's 700 suits a short script, not a controller whose
requests and steps keep objects alive for a few hundred milliseconds, nor
a lab emulating hundreds of BMCs (12% of its CPU went to collections)."""


def collect_cycles_less_often() -> None:
    """At 700, a 1,000-persona group start ran 3,700 young collections, and
    the objects its steps held across them reached the oldest generation and
    set off 21 full collections of 400,000 objects, about 200 ms each with
    the interpreter stopped: 11% of the controller's CPU in all. At
    ``YOUNG_OBJECTS`` such objects die young: 51 young collections, none
    full, 0.5 s of CPU. Memory is not at stake (cycles are still collected,
    20,000 objects later)."""
    gc.set_threshold(YOUNG_OBJECTS, *gc.get_threshold()[1:])


def open_files_to_the_limit() -> None:
    """Every agent keeps a connection open (see ``KEEP_ALIVE``), and a
    thousand of them pass the soft limit of 1,024 open files many systems
    start a process with: raise it to the hard limit, as servers do."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(soft, 65536) if hard == resource.RLIM_INFINITY else hard
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
