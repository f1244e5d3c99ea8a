"""Settings of a long-running voe process (the controller, the lab), made
once at its start."""

from __future__ import annotations

import gc
import resource

KEEP_ALIVE = 150
"""Seconds an idle connection is kept open. Agents keep theirs from beat to
beat (see ``voe.agent.client``), and paced at scale they beat every 10 s or
more: closed at uvicorn's default of 5 s, every beat would open a
connection again."""

GRACE = 2
"""Seconds a stopping HTTPS server waits for requests in flight and its
connections to close. Closing a TLS connection waits for the peer's
close_notify, which a client idling on a kept connection never sends:
unbounded, asyncio's wait for it (30 s) would hold every stop. API
requests are short (the reconciler does the long work), so two seconds
lose none."""

YOUNG_OBJECTS = 20_000
"""Allocations (net of frees) between collections of the youngest
generation: Python's 700 suits a short script, not a controller whose
requests and steps keep objects alive for a few hundred milliseconds, nor
a lab emulating hundreds of BMCs."""


def collect_cycles_less_often() -> None:
    """Collect the youngest generation every ``YOUNG_OBJECTS`` allocations:
    objects held by a step for a few hundred milliseconds then die young,
    instead of surviving into the oldest generation and setting off full
    collections, each of which stops the interpreter. Memory is not at
    stake: cycles are still collected, a little later."""
    gc.set_threshold(YOUNG_OBJECTS, *gc.get_threshold()[1:])


def open_files_to_the_limit() -> None:
    """Every agent keeps a connection open (see ``KEEP_ALIVE``), and a
    datacenter's agents pass the soft limit of 1,024 open files many
    systems start a process with: raise it to the hard limit, as servers do."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(soft, 65536) if hard == resource.RLIM_INFINITY else hard
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
