"""change log positions: changes are numbered in commit order once committed

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("changes", sa.Column("position", sa.BigInteger(), nullable=True))
    # Until now ids were handed out in commit order: they are the positions of the changes.
    op.execute("UPDATE changes SET position = id")
    op.create_index("ix_changes_position", "changes", ["position"], unique=True)
    op.create_index("ix_changes_collection_position", "changes", ["collection", "position"])
    op.create_index(
        "ix_changes_unnumbered",
        "changes",
        ["id"],
        postgresql_where=sa.text("position IS NULL"),
        sqlite_where=sa.text("position IS NULL"),
    )
    op.drop_index("ix_changes_collection_id", table_name="changes")


def downgrade():
    op.create_index("ix_changes_collection_id", "changes", ["collection", "id"])
    op.drop_index("ix_changes_unnumbered", table_name="changes")
    op.drop_index("ix_changes_collection_position", table_name="changes")
    op.drop_index("ix_changes_position", table_name="changes")
    with op.batch_alter_table("changes") as batch:
        batch.drop_column("position")
