"""How a voe process logs: lines of text for a terminal, or one JSON object
per line (``--log-format json``, or ``VOE_LOG_FORMAT=json`` which child
processes inherit) for a log pipeline. Every record names its process, and
a record made while serving an API request names that request's id and
token."""

from __future__ import annotations

import logging
import os
import sys

from pythonjsonlogger.json import JsonFormatter

from voe.cause import CAUSE

FORMATS = ("text", "json")
ENV = "VOE_LOG_FORMAT"


class _WithCause(logging.Filter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def filter(self, record: logging.LogRecord) -> bool:
        record.voe_process = self.process
        cause = CAUSE.get()
        if cause is not None:
            record.request_id = cause.request_id
            if cause.by:
                record.by = cause.by
        return True


def configure(process: str, fmt: str | None = None, level: int = logging.INFO) -> str:
    """Send this process's records to stderr in ``fmt`` (default: the
    environment's, else text): voe's from ``level`` up, the libraries'
    warnings and errors (an HTTP client's line per request would cost the
    controller more than the request). The format is exported to child
    processes. Returns the format used."""
    fmt = fmt or os.environ.get(ENV) or "text"
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)} (--log-format or {ENV})")
    os.environ[ENV] = fmt
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter("{asctime}{levelname}{name}{voe_process}{message}", style="{",
                                           rename_fields={"asctime": "time", "levelname": "level", "name": "logger",
                                                          "voe_process": "process"}))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(voe_process)s %(name)s: %(message)s"))
    handler.addFilter(_WithCause(process))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("voe").setLevel(level)
    return fmt
