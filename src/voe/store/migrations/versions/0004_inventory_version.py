"""One row that every inventory write bumps, so that a read knows whether
the inventory it loaded last is still current without scanning every
object (``InventoryStore.load``).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "inventory_version",
        sa.Column("id", sa.Integer, nullable=False, comment="always 1: one row"),
        sa.Column("version", sa.BigInteger, nullable=False, comment="bumped by every inventory write, in its transaction"),
        sa.PrimaryKeyConstraint("id", name="pk_inventory_version"),
    )
    op.bulk_insert(table, [{"id": 1, "version": 0}])


def downgrade() -> None:
    op.drop_table("inventory_version")
