"""change feed: the change log, its retention mark, stream tickets

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _json():
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade():
    op.create_table(
        "changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("collection", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", _json(), nullable=True),
        sa.Column("previous", _json(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),

        sa.Column("readers", sa.JSON(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('created', 'updated', 'deleted')", name=op.f("ck_changes_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_changes")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_changes_collection_id", "changes", ["collection", "id"])
    op.create_index(op.f("ix_changes_occurred_at"), "changes", ["occurred_at"])
    op.create_table(
        "change_log_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("pruned_through", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_log_state")),
    )
    op.create_table(
        "stream_tickets",
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_stream_tickets_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_stream_tickets")),
    )
    op.create_index(op.f("ix_stream_tickets_expires_at"), "stream_tickets", ["expires_at"])
    op.create_index(op.f("ix_stream_tickets_session_id"), "stream_tickets", ["session_id"])


def downgrade():
    op.drop_index(op.f("ix_stream_tickets_session_id"), table_name="stream_tickets")
    op.drop_index(op.f("ix_stream_tickets_expires_at"), table_name="stream_tickets")
    op.drop_table("stream_tickets")
    op.drop_table("change_log_state")
    op.drop_index(op.f("ix_changes_occurred_at"), table_name="changes")
    op.drop_index("ix_changes_collection_id", table_name="changes")
    op.drop_table("changes")
