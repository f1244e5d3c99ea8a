"""Live incarnations by host: a placement on a physical server asks whether
another persona's live incarnation holds it (``RuntimeStore.place``).

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_incarnations_host_live", "incarnations", ["host", "ended_at"])


def downgrade() -> None:
    op.drop_index("ix_incarnations_host_live", "incarnations")
