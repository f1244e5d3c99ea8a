"""``voe events``: the controller's event log from the command line, the
last events or those since a time, filtered as the console filters them,
and followed live with ``--follow``."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from voe.domain.severity import SEVERITIES

out = Console(soft_wrap=True, highlight=False)
PAGE = 1000  # the API's largest page
FOLLOW_PAUSE = 0.5
_AGE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_STYLE = {"debug": "dim", "warning": "yellow", "error": "red", "critical": "bold red"}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """An ISO time (UTC when it names no zone) or an age such as 10m, 2h, 1d."""
    age = _AGE.match(value.strip())
    if age:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[age[2]]: int(age[1])})
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither an ISO time (2026-12-04T09:00) nor an age "
                                 "(30s, 10m, 2h, 1d)", param_hint="--since") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def line(ev: dict) -> str:
    """One event as a terminal line: time, severity, kind, subject, message."""
    at = ev["at"][11:23] if ev.get("at") else "?"
    subject = " ".join(f"{k}={ev[k]}" for k in ("persona", "host", "group") if ev.get(k))
    severity = ev["severity"]
    style = _STYLE.get(severity)
    shown = f"[{style}]{severity:<8}[/{style}]" if style else f"{severity:<8}"
    return f"{at} {shown} {escape(ev['kind']):<18} {escape(subject)}  {escape(ev['message'])}"


def events(ctx: typer.Context,
           persona: Annotated[str | None, typer.Option(help="only this persona's events")] = None,
           host: Annotated[str | None, typer.Option(help="only this host's events")] = None,
           group: Annotated[str | None, typer.Option(help="only this group's events")] = None,
           severity: Annotated[str | None, typer.Option(help=f"this severity and above: {', '.join(SEVERITIES)}")] = None,
           kind: Annotated[str | None, typer.Option(help="only events of this kind (e.g. fence, transition)")] = None,
           since: Annotated[str | None, typer.Option(help="from this ISO time or age (10m, 2h, 1d) on")] = None,
           limit: Annotated[int, typer.Option(min=1, help="at most this many: the newest, or the first since --since")] = 50,
           follow: Annotated[bool, typer.Option("--follow", "-f", help="then print new events as they come")] = False,
           as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False):
    """Print the event log, oldest first; --follow keeps printing new events."""
    if severity is not None and severity not in SEVERITIES:
        raise typer.BadParameter(f"{severity!r} is not one of {', '.join(SEVERITIES)}", param_hint="--severity")
    client = ctx.obj.client()
    query = {k: v for k, v in dict(persona=persona, host=host, group=group, severity=severity, kind=kind).items() if v}
    show = (lambda ev: print(json.dumps(ev), flush=True)) if as_json else (lambda ev: out.print(line(ev)))
    if since is not None:
        batch = client.get("/events/log", params={**query, "since": parse_since(since).isoformat(),
                                                  "limit": min(limit, PAGE)})
    else:
        batch = client.get("/events/log", params={**query, "limit": min(limit, PAGE), "newest_first": True})[::-1]
    cursor = 0
    for ev in batch:
        show(ev)
        cursor = ev["id"]
    if not follow:
        return
    if not batch:  # nothing matched yet: follow from the log's newest event on
        newest = client.get("/events/log", params={"limit": 1, "newest_first": True})
        cursor = newest[0]["id"] if newest else 0
    try:
        while True:
            batch = client.get("/events/log", params={**query, "after_id": cursor, "limit": PAGE})
            for ev in batch:
                show(ev)
                cursor = ev["id"]
            if len(batch) < PAGE:
                time.sleep(FOLLOW_PAUSE)
    except KeyboardInterrupt:
        pass
