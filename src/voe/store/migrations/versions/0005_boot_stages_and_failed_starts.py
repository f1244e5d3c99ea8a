"""Boot stages (when an incarnation's machine fetched its script, and what
followed), why an incarnation's start failed, and an operator's retry of a
persona whose starts kept failing.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "boot_stages",
        sa.Column("persona", sa.String(63), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("stage", sa.String(16), nullable=False, comment="script | kernel | root | config"),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("persona", "generation", "stage", name="pk_boot_stages"),
    )
    op.add_column("incarnations", sa.Column("failure", sa.Text, nullable=True,
                                            comment="why its start failed, when it did (before it was ever ready)"))
    op.add_column("intents", sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True,
                                       comment="an operator's start of a persona whose starts kept failing"))


def downgrade() -> None:
    op.drop_column("intents", "retry_at")
    op.drop_column("incarnations", "failure")
    op.drop_table("boot_stages")
