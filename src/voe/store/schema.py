"""Tables. The inventory is kept as one row per object (its validated spec as
JSON) plus a ``claims`` table that makes the database itself refuse a second
holder of a MAC, an IP on a network, a VLAN id or a switch port, so two
controllers writing at once on PostgreSQL cannot both win.

Alembic migrations in ``migrations/versions`` create exactly these tables; a
test compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

JsonDoc = JSON().with_variant(JSONB(), "postgresql")

objects = Table(
    "inventory_objects",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("name", String(63), primary_key=True),
    Column("spec", JsonDoc, nullable=False, comment="validated spec; secrets replaced by ciphertext"),
    Column("revision", Integer, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("changed_in", BigInteger, nullable=False, server_default="0",
           comment="the inventory version whose write last created or changed it"),
)
Index("ix_inventory_objects_changed_in", objects.c.changed_in)

deletions = Table(
    "inventory_deletions",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("name", String(63), primary_key=True),
    Column("deleted_in", BigInteger, primary_key=True, comment="the inventory version whose write deleted it"),
)
Index("ix_inventory_deletions_deleted_in", deletions.c.deleted_in)
"""The objects the recent inventory writes deleted (see
``InventoryStore.load``), kept for ``KEPT_VERSIONS`` versions."""

inventory_version = Table(
    "inventory_version",
    metadata,
    Column("id", Integer, primary_key=True, comment="always 1: one row"),
    Column("version", BigInteger, nullable=False, comment="bumped by every inventory write, in its transaction"),
)
"""What an inventory read checks before reusing the inventory it last
loaded (see ``InventoryStore.load``): one row, not a fingerprint of every
object's row (a scan of the whole table), since a controller starting a
group reads the inventory thousands of times."""

claims = Table(
    "claims",
    metadata,
    Column("namespace", String(80), primary_key=True, comment="mac | vlan | ip:<network> | port:<switch>"),
    Column("value", String(80), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(63), nullable=False),
    ForeignKeyConstraint(["kind", "name"], ["inventory_objects.kind", "inventory_objects.name"], ondelete="CASCADE"),
)
Index("ix_claims_owner", claims.c.kind, claims.c.name)

tokens = Table(
    "tokens",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("digest", String(64), nullable=False, unique=True, comment="sha256 of the token; the token itself is never stored"),
    Column("persona", String(63), nullable=True, comment="set for an agent's credential: it reads only this persona"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked", Boolean, nullable=False, server_default=false()),
    Column("expires_at", DateTime(timezone=True), nullable=True, comment="set for a bootstrap token: refused after this"),
)

events = Table(
    "events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("severity", String(8), nullable=False),
    Column("kind", String(40), nullable=False, comment="e.g. transition, driver-call, audit"),
    Column("persona", String(63), nullable=True),
    Column("host", String(63), nullable=True),
    Column("group", String(63), nullable=True),
    Column("message", Text, nullable=False),
    Column("data", JsonDoc, nullable=True),
)
Index("ix_events_persona_id", events.c.persona, events.c.id)
Index("ix_events_host_id", events.c.host, events.c.id)

# --- runtime (written by the reconciler only; see migration 0002) ----------

persona_runtime = Table(
    "persona_runtime",
    metadata,
    Column("persona", String(63), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("generation", Integer, nullable=False, server_default="0", comment="the current or last incarnation"),
    Column("since", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("reason", Text, nullable=True),
    Column("plan", JsonDoc, nullable=True, comment="the machine a group start reserved, and why"),
)

incarnations = Table(
    "incarnations",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("persona", String(63), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("kind", String(8), nullable=False, comment="physical | vm"),
    Column("host", String(63), nullable=False, comment="the physical host, or the hypervisor host of the VM"),
    Column("vm", String(80), nullable=True),
    Column("boot_mac", String(17), nullable=False),
    Column("why", Text, nullable=False, comment="the placement's explanation"),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("ready_at", DateTime(timezone=True), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("evidence", Text, nullable=True, comment="why it cannot run any more: the positive evidence"),
    Column("failure", Text, nullable=True, comment="why its start failed, when it did (before it was ever ready)"),
    UniqueConstraint("persona", "generation", name="uq_incarnations_persona"),
)
Index("ix_incarnations_live", incarnations.c.persona, incarnations.c.ended_at)
Index("ix_incarnations_host_live", incarnations.c.host, incarnations.c.ended_at)

heartbeats = Table(
    "heartbeats",
    metadata,
    Column("persona", String(63), primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("ready", Boolean, nullable=False),
    Column("stopping", Boolean, nullable=False, server_default=false()),
    Column("report", JsonDoc, nullable=True),
)

boot_scripts = Table(
    "boot_scripts",
    metadata,
    Column("mac", String(17), primary_key=True),
    Column("persona", String(63), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("script", Text, nullable=False),
)

boot_stages = Table(
    "boot_stages",
    metadata,
    Column("persona", String(63), primary_key=True),
    Column("generation", Integer, primary_key=True),
    Column("stage", String(16), primary_key=True, comment="script | kernel | root | config"),
    Column("at", DateTime(timezone=True), nullable=False),
)

host_runtime = Table(
    "host_runtime",
    metadata,
    Column("host", String(63), primary_key=True),
    Column("state", String(16), nullable=False, comment="ok | fenced"),
    Column("reason", Text, nullable=True),
    Column("since", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

intents = Table(
    "intents",
    metadata,
    Column("persona", String(63), primary_key=True),
    Column("move_kind", String(8), nullable=True),
    Column("move_host", String(63), nullable=True),
    Column("confirm_dead_by", String(63), nullable=True),
    Column("confirm_dead_reason", Text, nullable=True),
    Column("retry_at", DateTime(timezone=True), nullable=True,
           comment="an operator's start of a persona whose starts kept failing"),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

leadership = Table(
    "leadership",
    metadata,
    Column("id", Integer, primary_key=True, comment="always 1: there is one lease"),
    Column("term", BigInteger, nullable=False, comment="grows by one with every new leader"),
    Column("holder", String(80), nullable=True, comment="the controller that leads in this term"),
    Column("expires_at", DateTime(timezone=True), nullable=False, comment="by the database's clock"),
    Column("holder_session", Integer, nullable=True,
           comment="the server process of the holder's lease connection: gone, so is the holder"),
)

controllers = Table(
    "controllers",
    metadata,
    Column("name", String(80), primary_key=True),
    Column("url", Text, nullable=False, comment="its API and console"),
    Column("agents_url", Text, nullable=False, comment="where its agents beat"),
    Column("boot_url", Text, nullable=False, comment="where machines fetch boot scripts"),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("renewed_at", DateTime(timezone=True), nullable=False,
           comment="its last sign of life, or its last renewal as leader"),
    Column("term", BigInteger, nullable=True, comment="the term it leads or led last"),
)

beat_relay = Table(
    "beat_relay",
    metadata,
    Column("controller", String(80), primary_key=True),
    Column("seq", BigInteger, primary_key=True, comment="grows by one with each batch of this controller"),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("beats", JsonDoc, nullable=False, comment="persona -> its newest beat heard since the last batch"),
)
