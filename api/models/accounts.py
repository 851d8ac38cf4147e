"""Accounts: users, their sessions and refresh tokens, link tokens, second factors and
log-in challenges, security events, and idempotency keys (scoped to a caller)."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column
from uuid6 import uuid7

from api.constants import LINK_PURPOSES, ROLES
from api.extensions import db
from api.models.base import UTCDateTime, utcnow


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
