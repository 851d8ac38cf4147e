"""Records and who else may read them: collection policies, groups and their members,
grants."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column
from uuid6 import uuid7

from api.constants import CREATE_POLICIES, GRANT_ACCESS, READ_POLICIES
from api.extensions import db
from api.models.base import UTCDateTime, utcnow


class Record(db.Model):
    """A JSON object in a named collection, owned by the user who created it."""

    __tablename__ = "records"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    owner_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    collection: Mapped[str] = mapped_column(sa.String(64))
    data: Mapped[dict] = mapped_column(sa.JSON().with_variant(JSONB(), "postgresql"))
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        # Keyset pages of one owner's collection by the default and timestamp sorts.
        sa.Index(
            "ix_records_owner_collection_created", "owner_id", "collection", "created_at", "id"
        ),
        sa.Index(
            "ix_records_owner_collection_updated", "owner_id", "collection", "updated_at", "id"
        ),
        sa.Index("ix_records_owner_collection_id", "owner_id", "collection", "id"),
        # The same across owners: pages of everything a caller may read (?scope=all|shared).
        sa.Index("ix_records_collection_created", "collection", "created_at", "id"),
        sa.Index("ix_records_collection_updated", "collection", "updated_at", "id"),
        sa.Index("ix_records_collection_id", "collection", "id"),
    )


class CollectionPolicy(db.Model):
    """Who reads and who creates a collection's records; a collection without a row has the
    default policy (read: owner, create: users)."""

    __tablename__ = "collection_policies"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    read: Mapped[str] = mapped_column(sa.String(8))
    create: Mapped[str] = mapped_column(sa.String(8))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        sa.CheckConstraint(f"read IN {READ_POLICIES}", name="read"),
        sa.CheckConstraint(f'"create" IN {CREATE_POLICIES}', name="create"),
    )


class Group(db.Model):
    """Users that records are shared with together; its owner is one of its members."""

    __tablename__ = "groups"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(sa.String(100))
    owner_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GroupMember(db.Model):
    __tablename__ = "group_members"

    group_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # A user's groups: what every visibility check of that user reads.
    __table_args__ = (sa.Index("ix_group_members_user_id_group_id", "user_id", "group_id"),)


class RecordGrant(db.Model):
    """`read` or `write` on one record for one user or one group (exactly one of the two)."""

    __tablename__ = "record_grants"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    record_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("records.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    group_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("groups.id", ondelete="CASCADE")
    )
    access: Mapped[str] = mapped_column(sa.String(5))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        sa.CheckConstraint(f"access IN {GRANT_ACCESS}", name="access"),
        sa.CheckConstraint("(user_id IS NULL) <> (group_id IS NULL)", name="one_grantee"),
        # By record: a record's grants, and the EXISTS of a listing (record, then grantee).
        sa.UniqueConstraint("record_id", "user_id"),
        sa.UniqueConstraint("record_id", "group_id"),
        # By grantee: what is shared with a user or a group.
        sa.Index("ix_record_grants_user_id_record_id", "user_id", "record_id"),
        sa.Index("ix_record_grants_group_id_record_id", "group_id", "record_id"),
    )

    @property
    def grantee(self) -> str:
        """`user:<id>` or `group:<id>`, as the API names a grantee."""
        return f"user:{self.user_id}" if self.user_id else f"group:{self.group_id}"
