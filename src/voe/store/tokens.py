"""API tokens: random bearer strings, stored only as their SHA-256 digest.

Roles are ordered: a viewer reads; an operator also starts, stops, moves and
injects faults; an admin also changes the inventory and manages tokens. An
agent's credential is a token bound to one persona: it reads that persona's
configuration and nothing else. A bootstrap token is what a boot script
carries instead (the script travels in clear): worth one exchange for the
agent's credential, before its deadline, and nothing else.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from sqlalchemy import Connection, Engine, bindparam, insert, select, update
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


def bootstrap_token_name(persona: str, generation: int) -> str:
    return f"bootstrap-{persona}-g{generation}"


BOOTSTRAP = "bootstrap"
"""The role of a bootstrap token: no route accepts it but the exchange."""

_BY_DIGEST = select(schema.tokens).where((schema.tokens.c.digest == bindparam("digest"))
                                         & (schema.tokens.c.revoked == False)  # noqa: E712
                                         & (schema.tokens.c.role != BOOTSTRAP))
"""Built once: an agent's beat reads its token (see ``KNOWN_FOR``)."""

KNOWN_FOR = 30.0
"""Seconds a token once found valid is taken as valid without a store read:
every agent beat is a request, and each read its token (on the event loop).
Longer than any beat interval pacing tells agents at scale, or every beat
would read the store. A revocation or replacement
through this store forgets it at once; one made by another process (a
second controller on the same PostgreSQL) counts after this long. An
agent's credential outliving its incarnation gains nothing: a beat from an
ended generation is answered "stale" from the store."""
KEEP_AT_MOST = 10_000  # tokens known at once before the expired are dropped


class TokenStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.reader = reader(engine)
        self._known: dict[str, tuple[Principal, float]] = {}  # digest -> (who, when read)
        self._known_lock = threading.Lock()
        self._forgotten = 0  # revocations and replacements so far: a read older than one is not kept

    def _forget(self, name: str) -> None:
        with self._known_lock:
            self._forgotten += 1
            for d in [d for d, (who, _) in self._known.items() if who.name == name]:
                del self._known[d]

    def _keep(self, d: str, who: Principal, forgotten_before: int) -> None:
        now = time.monotonic()
        with self._known_lock:
            if self._forgotten != forgotten_before:
                return  # a token was revoked or replaced while this one was read: read it again next time
            if len(self._known) > KEEP_AT_MOST:
                self._known = {k: v for k, v in self._known.items() if now - v[1] < KNOWN_FOR}
            self._known[d] = (who, now)

    def create(self, name: str, role: Role, persona: str | None = None) -> str:
        """Make a token; the clear text is returned once and never kept."""
        token = PREFIX + secrets.token_urlsafe(32)
        try:
            with self.engine.begin() as c:
                c.execute(insert(schema.tokens).values(name=name, role=role, digest=digest(token), persona=persona))
        except IntegrityError:
            raise Conflict(f"a token named {name!r} exists; revoke it or choose another name", ("name",)) from None
        return token

    def replace(self, name: str, role: Role, persona: str | None = None, conn: Connection | None = None) -> str:
        """Revoke-and-reissue under one name (an agent's credential per
        incarnation); in ``conn``'s transaction when given."""
        token = PREFIX + secrets.token_urlsafe(32)
        self._forget(name)
        with nullcontext(conn) if conn is not None else self.engine.begin() as c:
            c.execute(schema.tokens.delete().where(schema.tokens.c.name == name))
            c.execute(insert(schema.tokens).values(name=name, role=role, digest=digest(token), persona=persona))
        return token

    def create_bootstrap(self, persona: str, generation: int, valid_for: float, conn: Connection) -> str:
        """A one-use token for ``persona``'s ``generation``, good for
        ``valid_for`` seconds, in ``conn``'s transaction."""
        token = PREFIX + secrets.token_urlsafe(32)
        name = bootstrap_token_name(persona, generation)
        conn.execute(schema.tokens.delete().where(schema.tokens.c.name == name))
        conn.execute(insert(schema.tokens).values(name=name, role=BOOTSTRAP, digest=digest(token), persona=persona,
                                                  expires_at=datetime.now(UTC) + timedelta(seconds=valid_for)))
        return token

    def redeem(self, bootstrap: str, persona: str, generation: int) -> str | None:
        """The agent credential of ``persona``'s ``generation`` for its
        bootstrap token, or None when that token is unknown, used, expired
        or another incarnation's. Using it up and issuing the credential is
        one transaction, and the use is a conditional update: of two
        exchanges racing with one token, exactly one gets a credential."""
        with self.engine.begin() as c:
            used = c.execute(update(schema.tokens).where(
                (schema.tokens.c.digest == digest(bootstrap)) & (schema.tokens.c.revoked == False)  # noqa: E712
                & (schema.tokens.c.role == BOOTSTRAP) & (schema.tokens.c.name == bootstrap_token_name(persona, generation))
                & (schema.tokens.c.expires_at > datetime.now(UTC))).values(revoked=True)).rowcount
            if used != 1:
                return None
            return self.replace(agent_token_name(persona, generation), "agent", persona=persona, conn=c)

    def authenticate(self, token: str) -> Principal | None:
        d = digest(token)
        with self._known_lock:
            known, forgotten = self._known.get(d), self._forgotten
        if known is not None and time.monotonic() - known[1] < KNOWN_FOR:
            return known[0]
        with self.reader.connect() as c:
            row = c.execute(_BY_DIGEST, {"digest": d}).first()
        if row is None:
            return None
        who = Principal(row.name, row.role, row.persona)
        self._keep(d, who, forgotten)
        return who

    def recall(self, token: str) -> Principal | None:
        """``token``'s holder if it was found valid lately, without a store read."""
        with self._known_lock:
            known = self._known.get(digest(token))
        return known[0] if known is not None and time.monotonic() - known[1] < KNOWN_FOR else None

    def ever_issued(self, token: str) -> bool:
        """Whether ``token`` was issued at all (revoked, spent or not): a
        wrong token that was never issued is a guess."""
        with self.reader.connect() as c:
            return c.execute(select(schema.tokens.c.name).where(schema.tokens.c.digest == digest(token))).first() \
                is not None

    def list(self) -> list[dict]:
        with self.reader.connect() as c:
            rows = c.execute(select(schema.tokens.c.name, schema.tokens.c.role, schema.tokens.c.persona,
                                    schema.tokens.c.created_at, schema.tokens.c.revoked)
                             .where(schema.tokens.c.persona.is_(None)).order_by(schema.tokens.c.name)).all()
        return [dict(r._mapping) for r in rows]

    def revoke(self, name: str) -> None:
        self._forget(name)
        with self.engine.begin() as c:
            n = c.execute(update(schema.tokens).where(schema.tokens.c.name == name).values(revoked=True)).rowcount
        if not n:
            raise NotFound("token", name)

    def revoke_incarnation(self, persona: str, generation: int) -> None:
        """An ended incarnation's credential and, if never used, its
        bootstrap token; a retried release finds nothing left to do."""
        names = (agent_token_name(persona, generation), bootstrap_token_name(persona, generation))
        for name in names:
            self._forget(name)
        with self.engine.begin() as c:
            c.execute(update(schema.tokens).where(schema.tokens.c.name.in_(names)).values(revoked=True))

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
