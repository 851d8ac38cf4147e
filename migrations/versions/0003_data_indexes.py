"""data indexes: the data keys an operator indexed with `flask data-index add`

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

The indexes themselves are built by the command (concurrently on PostgreSQL), never here:
they depend on the data, and migrations/env.py keeps them out of autogenerate's comparison.
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DATA_INDEX_NAME = re.compile(r"ix_records_data_[0-9a-f]{1,47}")


def upgrade():
    op.create_table(
        "data_indexes",
        sa.Column("field", sa.String(length=600), nullable=False),
        sa.Column("index_name", sa.String(length=63), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("field", name=op.f("pk_data_indexes")),
    )


def downgrade():
    # Without their declarations nothing would list or drop the indexes: they go too.
    names = op.get_bind().execute(sa.text("SELECT index_name FROM data_indexes")).scalars()
    for name in names:
        if DATA_INDEX_NAME.fullmatch(name):  # the only names `data-index add` writes
            op.execute(f"DROP INDEX IF EXISTS {name}")
    op.drop_table("data_indexes")
