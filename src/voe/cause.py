"""What caused the work under way: the API request (its id) and the token
that made it (its name, never its secret). Set by the API for the length
of a request; read by the event log, which records it in every event the
request causes, and by the log records of that request."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class Cause:
    request_id: str
    by: str | None = None
    """The name of the token, once the request has been authenticated."""

    def as_data(self) -> dict[str, str]:
        return {"request_id": self.request_id, **({"by": self.by} if self.by else {})}


CAUSE: ContextVar[Cause | None] = ContextVar("voe_cause", default=None)
