"""``voe backup`` and ``voe restore``: the whole store to one file and back.

A backup is taken from the running controller, through its API, from one
snapshot. A restore writes the store directly, as ``voe serve`` opens it
(``--data-dir``, ``--database-url``), with every controller on it stopped:
into a new store, or over an existing one with ``--replace``."""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from voe.errors import VoeError

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def backup(ctx: typer.Context, file: Annotated[Path, typer.Argument(help="where to write it (gzip JSON lines)")]):
    """Back the whole store up to FILE from the running controller (secrets stay sealed)."""
    from voe.store.backup import BackupRefused, read_file

    partial = file.with_name(file.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # token digests, sealed secrets
    with os.fdopen(fd, "wb") as f:
        size = ctx.obj.client().download("/backup", f)
    try:
        last = collections.deque(read_file(partial), maxlen=1)  # the whole file reads back, to its end
        end = last.pop() if last else {}
        if not end.get("end"):
            raise BackupRefused("the controller's answer stopped before the backup's end")
    except BackupRefused as e:
        partial.unlink()
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(1) from None
    partial.replace(file)
    rows = ", ".join(f"{n} {t}" for t, n in end["counts"].items() if n)
    out.print(f"{file}: {size:,} bytes; {rows}")
    out.print("keep the controller's secret key (<data dir>/secret.key or VOE_SECRET_KEY) apart: a restore needs it")


def restore(ctx: typer.Context, file: Annotated[Path, typer.Argument(help="a file written by voe backup")],
            replace: Annotated[bool, typer.Option(help="overwrite a store that is not empty")] = False,
            database_url: Annotated[str | None, typer.Option(
                envvar="VOE_DATABASE_URL", help="PostgreSQL URL; SQLite in the data dir when absent")] = None):
    """Restore a backup into a store, with every controller on it stopped."""
    from voe.store import db
    from voe.store.backup import read_file
    from voe.store.backup import restore as restore_store
    from voe.store.secrets import Sealer, load_key

    if not file.is_file():
        err.print(f"error: {file}: no such file; give a file written by `voe backup`", markup=False)
        raise typer.Exit(2)
    directory = db.data_dir(ctx.obj.data_dir)
    engine = db.open_engine(db.database_url(directory, database_url))
    try:
        counts = restore_store(engine, lambda: read_file(file), Sealer(load_key(directory)), replace=replace)
    except VoeError as e:
        err.print(f"error: {e}; nothing was changed", markup=False)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    rows = ", ".join(f"{n} {t}" for t, n in counts.items() if n)
    out.print(f"restored into {engine.url.render_as_string(hide_password=True)}: {rows}")
