"""Several controllers on one database: the leader's lease and term, the
controllers that serve, and the heartbeats each relays to the others.

Revision ID: 0007
Revises: 0006
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JsonDoc = sa.JSON().with_variant(JSONB(), "postgresql")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    lease = op.create_table(
        "leadership",
        sa.Column("id", sa.Integer, primary_key=True, comment="always 1: there is one lease"),
        sa.Column("term", sa.BigInteger, nullable=False, comment="grows by one with every new leader"),
        sa.Column("holder", sa.String(80), nullable=True, comment="the controller that leads in this term"),
        sa.Column("expires_at", Stamp, nullable=False, comment="by the database's clock"),
        sa.Column("holder_session", sa.Integer, nullable=True,
                  comment="the server process of the holder's lease connection: gone, so is the holder"),
        sa.PrimaryKeyConstraint("id", name="pk_leadership"),
    )
    op.bulk_insert(lease, [{"id": 1, "term": 0, "holder": None, "expires_at": datetime(1970, 1, 1, tzinfo=UTC)}])
    op.create_table(
        "controllers",
        sa.Column("name", sa.String(80), primary_key=True),
        sa.Column("url", sa.Text, nullable=False, comment="its API and console"),
        sa.Column("agents_url", sa.Text, nullable=False, comment="where its agents beat"),
        sa.Column("boot_url", sa.Text, nullable=False, comment="where machines fetch boot scripts"),
        sa.Column("started_at", Stamp, nullable=False),
        sa.Column("renewed_at", Stamp, nullable=False, comment="its last sign of life, or its last renewal as leader"),
        sa.Column("term", sa.BigInteger, nullable=True, comment="the term it leads or led last"),
        sa.PrimaryKeyConstraint("name", name="pk_controllers"),
    )
    op.create_table(
        "beat_relay",
        sa.Column("controller", sa.String(80), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False, comment="grows by one with each batch of this controller"),
        sa.Column("at", Stamp, nullable=False),
        sa.Column("beats", JsonDoc, nullable=False, comment="persona -> its newest beat heard since the last batch"),
        sa.PrimaryKeyConstraint("controller", "seq", name="pk_beat_relay"),
    )


def downgrade() -> None:
    for t in ("beat_relay", "controllers", "leadership"):
        op.drop_table(t)
