"""Inventory objects, identity claims, tokens and the event log.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JsonDoc = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "inventory_objects",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("spec", JsonDoc, nullable=False, comment="validated spec; secrets replaced by ciphertext"),
        sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("kind", "name", name="pk_inventory_objects"),
    )
    op.create_table(
        "claims",
        sa.Column("namespace", sa.String(80), primary_key=True, comment="mac | vlan | ip:<network> | port:<switch>"),
        sa.Column("value", sa.String(80), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.PrimaryKeyConstraint("namespace", "value", name="pk_claims"),
        sa.ForeignKeyConstraint(
            ["kind", "name"], ["inventory_objects.kind", "inventory_objects.name"],
            name="fk_claims_kind_inventory_objects", ondelete="CASCADE",
        ),
    )
    op.create_index("ix_claims_owner", "claims", ["kind", "name"])
    op.create_table(
        "tokens",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, comment="sha256 of the token; the token itself is never stored"),
        sa.Column("persona", sa.String(63), nullable=True, comment="set for an agent's credential: it reads only this persona"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("name", name="pk_tokens"),
        sa.UniqueConstraint("digest", name="uq_tokens_digest"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False, comment="e.g. transition, driver-call, audit"),
        sa.Column("persona", sa.String(63), nullable=True),
        sa.Column("host", sa.String(63), nullable=True),
        sa.Column("group", sa.String(63), nullable=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("data", JsonDoc, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_persona_id", "events", ["persona", "id"])
    op.create_index("ix_events_host_id", "events", ["host", "id"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("tokens")
    op.drop_index("ix_claims_owner", "claims")
    op.drop_table("claims")
    op.drop_table("inventory_objects")
