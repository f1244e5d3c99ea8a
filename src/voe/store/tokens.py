"""API tokens: random bearer strings, stored only as their SHA-256 digest.

Roles are ordered: a viewer reads; an operator also starts, stops, moves and
injects faults; an admin also changes the inventory and manages tokens. An
agent's credential is a token bound to one persona: it reads that persona's
configuration and nothing else.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from voe.errors import Conflict, NotFound
from voe.store import schema
from voe.store.db import reader

Role = Literal["viewer", "operator", "admin", "agent"]
RANK = {"agent": 0, "viewer": 1, "operator": 2, "admin": 3}
PREFIX = "voe_"


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    persona: str | None = None

    def may(self, role: Role) -> bool:
        return RANK[self.role] >= RANK[role]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def agent_token_name(persona: str, generation: int) -> str:
    """One credential per incarnation: releasing an old incarnation late
    must not revoke its replacement's."""
    return f"agent-{persona}-g{generation}"


class TokenStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.reader = reader(engine)

    def create(self, name: str, role: Role, persona: str | None = None) -> str:
        """Make a token; the clear text is returned once and never kept."""
        token = PREFIX + secrets.token_urlsafe(32)
        try:
            with self.engine.begin() as c:
                c.execute(insert(schema.tokens).values(name=name, role=role, digest=digest(token), persona=persona))
        except IntegrityError:
            raise Conflict(f"a token named {name!r} exists; revoke it or choose another name", ("name",)) from None
        return token

    def replace(self, name: str, role: Role, persona: str | None = None) -> str:
        """Revoke-and-reissue under one name (an agent's credential per incarnation)."""
        token = PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as c:
            c.execute(schema.tokens.delete().where(schema.tokens.c.name == name))
            c.execute(insert(schema.tokens).values(name=name, role=role, digest=digest(token), persona=persona))
        return token

    def authenticate(self, token: str) -> Principal | None:
        with self.reader.connect() as c:
            row = c.execute(select(schema.tokens).where(
                (schema.tokens.c.digest == digest(token)) & (schema.tokens.c.revoked == False)  # noqa: E712
            )).first()
        return Principal(row.name, row.role, row.persona) if row else None

    def list(self) -> list[dict]:
        with self.reader.connect() as c:
            rows = c.execute(select(schema.tokens.c.name, schema.tokens.c.role, schema.tokens.c.persona,
                                    schema.tokens.c.created_at, schema.tokens.c.revoked)
                             .where(schema.tokens.c.persona.is_(None)).order_by(schema.tokens.c.name)).all()
        return [dict(r._mapping) for r in rows]

    def revoke(self, name: str) -> None:
        with self.engine.begin() as c:
            n = c.execute(update(schema.tokens).where(schema.tokens.c.name == name).values(revoked=True)).rowcount
        if not n:
            raise NotFound("token", name)

    def has_admin(self) -> bool:
        with self.reader.connect() as c:
            return c.execute(select(schema.tokens.c.name).where(
                (schema.tokens.c.role == "admin") & (schema.tokens.c.revoked == False))).first() is not None  # noqa: E712


def write_admin_token(directory: Path, token: str) -> Path:
    """``<data dir>/admin-token``, mode 0600 from its first byte."""
    path = directory / "admin-token"
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return path
