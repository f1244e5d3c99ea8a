"""One session of a hypervisor client library whose calls block and carry
no deadline of their own (libvirt, pyvmomi): opened on first use and kept,
each call run on a small pool of the driver's own under the driver's
timeout, and dropped when a call timed out or failed in a way that says
the session is gone, so that the next call opens a new one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

from voe.errors import DriverTimeout

S = TypeVar("S")
T = TypeVar("T")


class BlockingSession(Generic[S]):
    def __init__(self, device: str, open_session: Callable[[], S], close_session: Callable[[S], None],
                 timeout: float, name: str):
        self.device = device
        self._open, self._close = open_session, close_session
        self.timeout = timeout
        self._name = name
        self._session: S | None = None
        self._calls: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _current(self) -> S:
        with self._lock:
            if self._session is None:
                self._session = self._open()
            return self._session

    def run(self, operation: str, fn: Callable[[S], T]) -> T:
        """``fn(session)`` under the deadline (DriverTimeout past it, the
        session dropped); whatever else it raises is the caller's to type."""
        with self._lock:
            if self._calls is None:
                self._calls = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"{self._name}-{self.device}")
            future = self._calls.submit(lambda: fn(self._current()))
        try:
            return future.result(timeout=self.timeout)
        except FutureTimeout:
            self.drop()
            raise DriverTimeout(self.device, operation, self.timeout) from None

    def drop(self) -> None:
        """The next call opens a new session."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            self._close(session)

    def close(self) -> None:
        self.drop()
        with self._lock:
            calls, self._calls = self._calls, None
        if calls is not None:
            calls.shutdown(wait=False, cancel_futures=True)
