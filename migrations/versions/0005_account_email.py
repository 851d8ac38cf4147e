"""account e-mail: verified addresses, pending changes, link tokens

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Existing accounts start unverified: nothing has proved their addresses yet.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(
            sa.Column("email_verified", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("pending_email", sa.String(length=320), nullable=True))
    op.create_table(
        "link_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("failed_codes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "purpose IN ('verify_email', 'reset_password', 'change_email')",
            name=op.f("ck_link_tokens_purpose"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_link_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_link_tokens_token_hash")),
    )
    op.create_index(
        "ix_link_tokens_email_purpose_created", "link_tokens", ["email", "purpose", "created_at"]
    )
    op.create_index("ix_link_tokens_user_id_purpose", "link_tokens", ["user_id", "purpose"])


def downgrade():
    op.drop_index("ix_link_tokens_user_id_purpose", table_name="link_tokens")
    op.drop_index("ix_link_tokens_email_purpose_created", table_name="link_tokens")
    op.drop_table("link_tokens")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("pending_email")
        batch_op.drop_column("email_verified")
