"""sharing data: collection policies, groups and their members, per-record grants

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

Indexes on records by collection (across owners) serve pages of everything a caller may read;
grants are indexed by record (the unique constraints) and by grantee, memberships by user.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "collection_policies",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("read", sa.String(length=8), nullable=False),
        sa.Column("create", sa.String(length=8), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "read IN ('owner', 'users', 'public')", name=op.f("ck_collection_policies_read")
        ),
        sa.CheckConstraint(
            "\"create\" IN ('users', 'admins')", name=op.f("ck_collection_policies_create")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_collection_policies")),
    )
    op.create_table(
        "groups",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_groups_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
    )
    op.create_index(op.f("ix_groups_owner_id"), "groups", ["owner_id"])
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_group_members_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_group_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_group_members")),
    )
    op.create_index("ix_group_members_user_id_group_id", "group_members", ["user_id", "group_id"])
    op.create_table(
        "record_grants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("access", sa.String(length=5), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("access IN ('read', 'write')", name=op.f("ck_record_grants_access")),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (group_id IS NULL)", name=op.f("ck_record_grants_one_grantee")
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_record_grants_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["records.id"],
            name=op.f("fk_record_grants_record_id_records"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_record_grants_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_grants")),
        sa.UniqueConstraint(
            "record_id", "group_id", name=op.f("uq_record_grants_record_id_group_id")
        ),
        sa.UniqueConstraint(
            "record_id", "user_id", name=op.f("uq_record_grants_record_id_user_id")
        ),
    )
    op.create_index("ix_record_grants_user_id_record_id", "record_grants", ["user_id", "record_id"])
    op.create_index(
        "ix_record_grants_group_id_record_id", "record_grants", ["group_id", "record_id"]
    )
    op.create_index("ix_records_collection_created", "records", ["collection", "created_at", "id"])
    op.create_index("ix_records_collection_updated", "records", ["collection", "updated_at", "id"])
    op.create_index("ix_records_collection_id", "records", ["collection", "id"])


def downgrade():
    op.drop_index("ix_records_collection_id", table_name="records")
    op.drop_index("ix_records_collection_updated", table_name="records")
    op.drop_index("ix_records_collection_created", table_name="records")
    op.drop_table("record_grants")
    op.drop_table("group_members")
    op.drop_table("groups")
    op.drop_table("collection_policies")
