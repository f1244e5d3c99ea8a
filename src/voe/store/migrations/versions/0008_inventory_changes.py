"""Which inventory write last changed each object, and which objects the
recent writes deleted: a controller whose inventory is a few writes old
reads only those objects, not the whole inventory
(``InventoryStore.load``).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inventory_objects", sa.Column(
        "changed_in", sa.BigInteger, nullable=False, server_default="0",
        comment="the inventory version whose write last created or changed it"))
    op.create_index("ix_inventory_objects_changed_in", "inventory_objects", ["changed_in"])
    op.create_table(
        "inventory_deletions",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("deleted_in", sa.BigInteger, nullable=False, comment="the inventory version whose write deleted it"),
        sa.PrimaryKeyConstraint("kind", "name", "deleted_in", name="pk_inventory_deletions"),
    )
    op.create_index("ix_inventory_deletions_deleted_in", "inventory_deletions", ["deleted_in"])


def downgrade() -> None:
    op.drop_table("inventory_deletions")
    op.drop_index("ix_inventory_objects_changed_in", "inventory_objects")
    with op.batch_alter_table("inventory_objects") as batch:
        batch.drop_column("changed_in")
