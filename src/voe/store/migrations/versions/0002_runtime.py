"""Runtime state: persona states, incarnations, heartbeats, boot scripts,
host fencing state and operator intents.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JsonDoc = sa.JSON().with_variant(JSONB(), "postgresql")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "persona_runtime",
        sa.Column("persona", sa.String(63), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False, server_default="0", comment="the current or last incarnation"),
        sa.Column("since", Stamp, nullable=False, server_default=sa.func.now()),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("plan", JsonDoc, nullable=True, comment="the machine a group start reserved, and why"),
        sa.PrimaryKeyConstraint("persona", name="pk_persona_runtime"),
    )
    op.create_table(
        "incarnations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("persona", sa.String(63), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False, comment="physical | vm"),
        sa.Column("host", sa.String(63), nullable=False, comment="the physical host, or the hypervisor host of the VM"),
        sa.Column("vm", sa.String(80), nullable=True),
        sa.Column("boot_mac", sa.String(17), nullable=False),
        sa.Column("why", sa.Text, nullable=False, comment="the placement's explanation"),
        sa.Column("started_at", Stamp, nullable=False, server_default=sa.func.now()),
        sa.Column("ready_at", Stamp, nullable=True),
        sa.Column("ended_at", Stamp, nullable=True),
        sa.Column("evidence", sa.Text, nullable=True, comment="why it cannot run any more: the positive evidence"),
        sa.PrimaryKeyConstraint("id", name="pk_incarnations"),
        sa.UniqueConstraint("persona", "generation", name="uq_incarnations_persona"),
    )
    op.create_index("ix_incarnations_live", "incarnations", ["persona", "ended_at"])
    op.create_table(
        "heartbeats",
        sa.Column("persona", sa.String(63), primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("at", Stamp, nullable=False),
        sa.Column("ready", sa.Boolean, nullable=False),
        sa.Column("stopping", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("report", JsonDoc, nullable=True),
        sa.PrimaryKeyConstraint("persona", name="pk_heartbeats"),
    )
    op.create_table(
        "boot_scripts",
        sa.Column("mac", sa.String(17), primary_key=True),
        sa.Column("persona", sa.String(63), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("script", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("mac", name="pk_boot_scripts"),
    )
    op.create_table(
        "host_runtime",
        sa.Column("host", sa.String(63), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False, comment="ok | fenced"),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("since", Stamp, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("host", name="pk_host_runtime"),
    )
    op.create_table(
        "intents",
        sa.Column("persona", sa.String(63), primary_key=True),
        sa.Column("move_kind", sa.String(8), nullable=True),
        sa.Column("move_host", sa.String(63), nullable=True),
        sa.Column("confirm_dead_by", sa.String(63), nullable=True),
        sa.Column("confirm_dead_reason", sa.Text, nullable=True),
        sa.Column("at", Stamp, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("persona", name="pk_intents"),
    )


def downgrade() -> None:
    for t in ("intents", "host_runtime", "boot_scripts", "heartbeats"):
        op.drop_table(t)
    op.drop_index("ix_incarnations_live", "incarnations")
    op.drop_table("incarnations")
    op.drop_table("persona_runtime")
