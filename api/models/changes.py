"""The change log (the change feed's source of truth), its retention state, and the tickets
that open a change stream."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from api.constants import CHANGE_KINDS
from api.extensions import db
from api.models.base import UTCDateTime


class Change(db.Model):
    """One write to a record, logged in the transaction of the write (api/changes.py): the
    change feed's source of truth. The record as it was after the change (`data`, nothing for
    a deletion) and before it (`previous`, nothing for a creation), so that a stream can tell
    whether the record matched its filters on either side. No foreign keys: the deletions of
    a deleted account's records outlive the account."""

    __tablename__ = "changes"

    # SQLite: AUTOINCREMENT, so that an id is never handed out twice, even after the newest
    # change is pruned or rolled back.
    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    # The change's place in the log, in commit order: what streams read by and clients resume
    # from (api/changes.py). Given once the change has committed; None until then.
    position: Mapped[int | None] = mapped_column(sa.BigInteger)
    kind: Mapped[str] = mapped_column(sa.String(8))
    collection: Mapped[str] = mapped_column(sa.String(64))
    record_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    owner_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    version: Mapped[int]
    data: Mapped[dict | None] = mapped_column(sa.JSON().with_variant(JSONB(), "postgresql"))
    previous: Mapped[dict | None] = mapped_column(sa.JSON().with_variant(JSONB(), "postgresql"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    previous_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # A deletion's grantees (user ids, directly or through a group): its grants go with the
    # record, and the deletion must still reach whoever could read the record just before.
    readers: Mapped[list | None] = mapped_column(sa.JSON(none_as_null=True))

    __table_args__ = (
        sa.CheckConstraint(f"kind IN {CHANGE_KINDS}", name="kind"),
        sa.Index("ix_changes_position", "position", unique=True),
        # A stream's catch-up: the changes of its collections after its position.
        sa.Index("ix_changes_collection_position", "collection", "position"),
        # The sequencer's work: the changes still without a position, in id order.
        sa.Index(
            "ix_changes_unnumbered",
            "id",
            postgresql_where=sa.text("position IS NULL"),
            sqlite_where=sa.text("position IS NULL"),
        ),
        {"sqlite_autoincrement": True},
    )


class ChangeLogState(db.Model):
    """The change log's one row: every change up to `pruned_through` is gone (retention)."""

    __tablename__ = "change_log_state"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    pruned_through: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class StreamTicket(db.Model):
    """A single-use ticket that opens one change stream for a browser's EventSource, in the
    name of the session that asked for it; stored only as its SHA-256."""

    __tablename__ = "stream_tickets"

    token_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
