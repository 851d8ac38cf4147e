"""SQLAlchemy models: users, their sessions and refresh tokens, link tokens, second factors,
records and who else may read them (collection policies, grants, groups), idempotency keys,
the change log and stream tickets."""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column
from uuid6 import uuid7

from api import clock
from api.constants import (
    CHANGE_KINDS,
    CREATE_POLICIES,
    GRANT_ACCESS,
    LINK_PURPOSES,
    READ_POLICIES,
    ROLES,
)
from api.extensions import db


def utcnow() -> datetime:
    """Now in UTC, truncated to the millisecond: what is stored is exactly what clients see."""
    now = clock.now()
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)


class UTCDateTime(sa.TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    email_verified: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # The address of an e-mail change that awaits confirmation (api/link_tokens.py).
    pending_email: Mapped[str | None] = mapped_column(sa.String(320))
    # Whether a confirmed TOTP factor guards log-in (api/mfa.py keeps it in step with it).
    mfa_enabled: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    name: Mapped[str | None] = mapped_column(sa.String(200))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16), default="user", index=True)
    is_active: Mapped[bool] = mapped_column(default=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (sa.CheckConstraint(f"role IN {ROLES}", name="role"),)


class Session(db.Model):
    """One log-in on one device; lives until revoked or its refresh token expires."""

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    device_name: Mapped[str | None] = mapped_column(sa.String(100))
    user_agent: Mapped[str | None] = mapped_column(sa.String(512))
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # RFC 8176 methods of the log-in, space-separated ("pwd", "pwd otp"); refreshes keep it.
    amr: Mapped[str] = mapped_column(sa.String(32), default="pwd", server_default="pwd")

    # A user's sessions, newest first, for the paginated list.
    __table_args__ = (sa.Index("ix_sessions_user_id_id", "user_id", "id"),)

    # Not stored: whether this is the session of whoever reads it (api.accounts sets it).
    current = False


class RefreshToken(db.Model):
    """Every refresh token a session was given, stored only as a SHA-256 hash.

    The current token has `rotated_at` NULL. Keeping the rotated ones is what lets Coffer tell
    a replayed old token (theft: revoke the session) from one it never issued (just 401).
    """

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    session_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LinkToken(db.Model):
    """A request mailed to an address: verify it, reset a password, or confirm a change.

    The link's token is stored only as its SHA-256 (256 random bits need no slow hash); the
    6-digit code, which is guessable, only as an HMAC under a key derived from the server
    secret. `email` is the address the mail went to; `session_id` the session that asked for
    an e-mail change, which outlives the change.
    """

    __tablename__ = "link_tokens"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(sa.String(16))
    token_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32), unique=True)
    code_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    email: Mapped[str] = mapped_column(sa.String(320))
    session_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    failed_codes: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        sa.CheckConstraint(f"purpose IN {LINK_PURPOSES}", name="purpose"),
        # The newest request sent to an address, which a code is checked against.
        sa.Index("ix_link_tokens_email_purpose_created", "email", "purpose", "created_at"),
        # A user's requests of a purpose, replaced or revoked together.
        sa.Index("ix_link_tokens_user_id_purpose", "user_id", "purpose"),
    )


class MfaFactor(db.Model):
    """A user's TOTP factor: pending until a first code confirms it, then it guards log-in.

    The secret is stored only encrypted under a key derived from the server secret for this
    purpose (api/mfa.py). `last_step` is the newest 30-second step whose code was accepted:
    a code of that step or an older one is never accepted again.
    """

    __tablename__ = "mfa_factors"

    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[bytes] = mapped_column(sa.LargeBinary(255))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecoveryCode(db.Model):
    """One single-use recovery code of a user, stored only as an HMAC under a derived key."""

    __tablename__ = "recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MfaChallenge(db.Model):
    """The second step of a log-in whose password was right: its `mfa_token` (stored only as
    a SHA-256), where the log-in came from, and how many wrong codes it has seen."""

    __tablename__ = "mfa_challenges"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32), unique=True)
    device_name: Mapped[str | None] = mapped_column(sa.String(100))
    user_agent: Mapped[str | None] = mapped_column(sa.String(512))
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    failed_codes: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


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


class IdempotencyKey(db.Model):
    """A POST's `Idempotency-Key`, scoped to its caller, with the response to replay."""

    __tablename__ = "idempotency_keys"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    scope: Mapped[str] = mapped_column(sa.String(100))
    key: Mapped[str] = mapped_column(sa.String(255))
    fingerprint: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    status: Mapped[int | None]
    body: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    headers: Mapped[dict | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    __table_args__ = (sa.UniqueConstraint("scope", "key"),)


class SecurityEvent(db.Model):
    """What happened to an account, for its owner and admins. Kept after the user is deleted
    (no foreign key), and never holding a secret or a token."""

    __tablename__ = "security_events"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    type: Mapped[str] = mapped_column(sa.String(40))
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    session_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    user_agent: Mapped[str | None] = mapped_column(sa.String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    details: Mapped[dict] = mapped_column(sa.JSON, default=dict)

    # A user's events, newest first.
    __table_args__ = (sa.Index("ix_security_events_user_id_id", "user_id", "id"),)


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
