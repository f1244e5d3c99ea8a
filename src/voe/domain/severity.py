"""How much an event matters, from least to most: what the event log
stores and what its readers filter by."""

from __future__ import annotations

from typing import Literal

Severity = Literal["debug", "info", "warning", "error", "critical"]
SEVERITIES = ("debug", "info", "warning", "error", "critical")
