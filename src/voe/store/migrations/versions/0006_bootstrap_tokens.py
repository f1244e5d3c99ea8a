"""Bootstrap tokens: an expiry, for the one-use token a boot script carries.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True,
                                      comment="set for a bootstrap token: refused after this"))


def downgrade() -> None:
    op.drop_column("tokens", "expires_at")
