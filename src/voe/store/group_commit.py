"""Small write transactions from many threads, committed together.

SQLite has one writer at a time. A level of a group start is hundreds of
steps, each writing a few rows (its transition, a log line, a boot script)
in a transaction of its own would queue for the write lock, and the holder
of the lock, in an interpreter busy with all the others, would wait for its
turn between statements while the rest queue behind it. Here such
writes queue instead, and one thread commits all that are waiting in one
transaction, each in a savepoint of its own, so that one that fails (a
stale state) is undone alone. A caller still returns only once its write
is committed: what a step records is durable before it goes on.

PostgreSQL takes concurrent writers itself, and a shared transaction would
hold every write's per-persona locks to its end: there each write is its
own transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine

from voe.store.db import READ_ONLY

T = TypeVar("T")


class _Write:
    def __init__(self, work: Callable[[Connection], object]):
        self.work = work
        self.result: object = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class GroupCommit:
    """One per database, made by the store when it opens it (``Services``):
    every writer of that database shares it."""

    def __init__(self, engine: Engine):
        engine = engine.execution_options(**{READ_ONLY: False})
        self.engine = engine
        self.batched = engine.dialect.name == "sqlite"
        self._queue: list[_Write] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def run(self, work: Callable[[Connection], T]) -> T:
        """``work(conn)`` in a transaction, committed before this returns;
        what it raises is raised here, and nothing it wrote is kept. It
        must write through ``conn`` only (a transaction of its own inside
        would wait for the one it is part of)."""
        if not self.batched:
            with self.engine.begin() as c:
                return work(c)
        w = _Write(work)
        with self._wake:
            self._queue.append(w)
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="voe-group-commit", daemon=True)
                self._thread.start()
            self._wake.notify()
        w.done.wait()
        if w.error is not None:
            raise w.error
        return w.result  # type: ignore[return-value]

    def _serve(self) -> None:
        while True:
            with self._wake:
                while not self._queue:
                    self._wake.wait()
                batch, self._queue = self._queue, []
            self._commit(batch)

    def _commit(self, batch: list[_Write]) -> None:
        try:
            with self.engine.begin() as c:
                for w in batch:
                    try:
                        with c.begin_nested():
                            w.result = w.work(c)
                    except Exception as e:  # its savepoint is rolled back; the others stand
                        w.error = e
        except Exception as e:  # the commit itself failed: nothing of the batch is written
            for w in batch:
                if w.error is None:
                    w.error, w.result = e, None
        finally:
            for w in batch:
                w.done.set()

