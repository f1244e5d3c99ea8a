"""The controller's parts, opened once and shared by the API and the
reconciler: the store (inventory, tokens, events) and its data directory."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from voe.images.store import ImageStore, LocalImageStore
from voe.store import db
from voe.store.events import EventLog
from voe.store.group_commit import GroupCommit
from voe.store.inventory_store import InventoryStore
from voe.store.leadership import fence_writes
from voe.store.runtime import RuntimeStore
from voe.store.secrets import Sealer, load_key
from voe.store.tokens import TokenStore, write_admin_token

log = logging.getLogger("voe.services")

WAIT_FOR_DATABASE = 1.0
"""Seconds between tries of a database that does not answer yet."""


@dataclass
class Services:
    data_dir: Path
    engine: Engine
    inventory: InventoryStore
    tokens: TokenStore
    events: EventLog
    runtime: RuntimeStore
    images: ImageStore

    @classmethod
    def open(cls, data_dir: str | Path | None = None, database_url: str | None = None,
             patient: bool = False) -> Services:
        """``patient``: wait for a database that does not answer yet (a
        controller started beside a PostgreSQL that is starting or
        restarting), rather than fail."""
        directory = db.data_dir(data_dir)
        engine = db.open_engine(db.database_url(directory, database_url))
        while True:
            try:
                db.migrate(engine)
                break
            except OperationalError as e:
                if not patient:
                    raise
                log.warning("waiting for the database: %s", str(e).splitlines()[0])
                time.sleep(WAIT_FOR_DATABASE)
        if engine.dialect.name == "postgresql":
            fence_writes(engine)
        events = EventLog(engine, GroupCommit(engine))
        images = LocalImageStore(Path(os.environ.get("VOE_IMAGES_DIR") or directory / "images"))
        runtime = RuntimeStore(engine, events)
        inventory = InventoryStore(engine, Sealer(load_key(directory)), on_write=runtime.changed.set)
        return cls(directory, engine, inventory, TokenStore(engine), events, runtime, images)

    def ensure_admin_token(self) -> Path | None:
        """On first start, mint an admin token and leave it in the data dir
        (0600) for the CLI on this machine; later starts leave it alone."""
        if self.tokens.has_admin():
            return None
        token = self.tokens.replace("admin", "admin")
        return write_admin_token(self.data_dir, token)

    def close(self) -> None:
        self.runtime.beats.close()
        self.engine.dispose()
