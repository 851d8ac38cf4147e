"""Sessions: log-in, refresh-token rotation with reuse detection, and revocation.

A session is one log-in on one device. Its access tokens are verified by api/tokens.py; what
happens here is what starts, renews and ends it.
"""

import uuid
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app

from api import accounts, ratelimit
from api.errors import EmailNotVerified, NotFound, Unauthenticated
from api.events import emit
from api.extensions import db
from api.models import RefreshToken, Session, User, utcnow
from api.pagination import list_binding, newest_first
from api.passwords import verify_password
from api.tokens import (
    Caller,
    child_refresh_token,
    issue_access_token,
    new_refresh_token,
    token_hash,
)

INVALID_CREDENTIALS = "The email or password is incorrect."
INVALID_REFRESH_TOKEN = "The refresh token is invalid, expired or revoked."
EMAIL_NOT_VERIFIED = (
    "The email address is not verified yet: follow the link of the verification mail, or "
    "reset the password, which verifies the address too."
)


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """What a log-in or a refresh hands out: the session, its user and both tokens."""

    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    session: Session
    user: User
    token_type: str = "Bearer"


def _issued(user: User, session: Session, refresh_token: str) -> IssuedTokens:
    access_token, expires_in = issue_access_token(user, session)
    session.current = True  # the session the new tokens belong to
    return IssuedTokens(
        access_token=access_token,
        expires_in=expires_in,
        refresh_token=refresh_token,
        refresh_expires_in=current_app.config["COFFER_REFRESH_TOKEN_TTL"],
        session=session,
        user=user,
    )


def _issue_refresh_token(session: Session, token: str | None = None) -> str:
    token = token or new_refresh_token()
    db.session.add(RefreshToken(session_id=session.id, token_hash=token_hash(token)))
    return token


def log_in(
    *,
    email: str,
    password: str,
    device_name: str | None = None,
    user_agent: str | None,
    ip: str,
) -> IssuedTokens:
    """Check credentials (the same work and the same 401 whatever is wrong); start a session.

    Every attempt counts under the account's log-in limit first (429 once it is spent).
    """
    ratelimit.enforce_account_limit(accounts.LOG_IN, email)
    user = accounts.find_user(email)
    if not verify_password(user, password) or not user.is_active:
        # No user id for an unknown email: nothing that anyone could read back.
        emit("login_failed", user_id=user.id if user else None)
        raise Unauthenticated(INVALID_CREDENTIALS, reason=None)
    if not _may_sign_in(user):
        emit("login_failed", user_id=user.id, reason="email_not_verified")
        raise EmailNotVerified(EMAIL_NOT_VERIFIED)
    ttl = timedelta(seconds=current_app.config["COFFER_REFRESH_TOKEN_TTL"])
    session = Session(
        user_id=user.id,
        device_name=device_name,
        user_agent=(user_agent or "")[:512] or None,
        ip=ip,
        expires_at=utcnow() + ttl,
    )
    db.session.add(session)
    db.session.flush()
    refresh_token = _issue_refresh_token(session)
    db.session.commit()  # also saves a password hash upgraded by verify_password
    emit("session_created", user_id=user.id, session_id=session.id, device_name=device_name)
    return _issued(user, session, refresh_token)


def refresh(presented: str) -> IssuedTokens:
    """Rotate a refresh token; a replayed old one revokes the session (see API.md).

    Rotation is a compare-and-swap on `rotated_at`, so of many parallel refreshes exactly one
    rotates; the others, inside the reuse interval, get the same derived child token back.
    """
    row = db.session.execute(
        db.select(RefreshToken, Session, User)
        .join(Session, Session.id == RefreshToken.session_id)
        .join(User, User.id == Session.user_id)
        .where(RefreshToken.token_hash == token_hash(presented))
    ).first()
    if row is None:
        raise Unauthenticated(INVALID_REFRESH_TOKEN)
    token, session, user = row
    now = utcnow()
    if session.revoked_at is not None or session.expires_at <= now or not user.is_active:
        raise Unauthenticated(INVALID_REFRESH_TOKEN)
    if not _may_sign_in(user):
        raise EmailNotVerified(EMAIL_NOT_VERIFIED)
    child = child_refresh_token(presented)
    if token.rotated_at is None:
        rotated = db.session.execute(
            db.update(RefreshToken)
            .where(RefreshToken.id == token.id, RefreshToken.rotated_at.is_(None))
            .values(rotated_at=now)
        )
        if rotated.rowcount == 1:
            _issue_refresh_token(session, child)
            session.last_used_at = now
            db.session.commit()
            emit("session_refreshed", user_id=user.id, session_id=session.id, replayed=False)
            return _issued(user, session, child)
        db.session.rollback()  # a parallel refresh rotated it first
        token = db.session.get(RefreshToken, token.id, populate_existing=True)
    if _within_grace(token, child, now):
        emit("session_refreshed", user_id=user.id, session_id=session.id, replayed=True)
        return _issued(user, session, child)
    session.revoked_at = now
    db.session.commit()
    emit("refresh_reuse_detected", user_id=user.id, session_id=session.id)
    raise Unauthenticated(INVALID_REFRESH_TOKEN)


def _may_sign_in(user: User) -> bool:
    """Whether a user whose password (or refresh token) was right may have tokens: not when
    COFFER_REQUIRE_VERIFIED_EMAIL is on and the address is unverified."""
    return user.email_verified or not current_app.config["COFFER_REQUIRE_VERIFIED_EMAIL"]


def _within_grace(token: RefreshToken, child: str, now) -> bool:
    """Is `token` the immediate parent of the current token, rotated moments ago?"""
    interval = current_app.config["COFFER_REFRESH_REUSE_INTERVAL"]
    if interval <= 0 or now - token.rotated_at > timedelta(seconds=interval):
        return False
    current = db.session.execute(
        db.select(RefreshToken.rotated_at).where(RefreshToken.token_hash == token_hash(child))
    ).first()
    return current is not None and current.rotated_at is None


def _active_sessions(user_id: uuid.UUID):
    return db.select(Session).where(
        Session.user_id == user_id, Session.revoked_at.is_(None), Session.expires_at > utcnow()
    )


def sessions_page(
    caller: Caller, *, limit: int, cursor: str | None
) -> tuple[list[Session], str | None]:
    """The caller's active sessions, newest first, each marked `current` or not."""
    found, next_cursor = newest_first(
        _active_sessions(caller.id),
        Session.id,
        binding=list_binding("sessions", caller.id),
        limit=limit,
        cursor=cursor,
    )
    for session in found:
        session.current = session.id == caller.session_id
    return found, next_cursor


def get_session(caller: Caller, session_id: uuid.UUID) -> Session:
    """One of the caller's active sessions; another user's, or an ended one, is NotFound."""
    session = db.session.execute(
        _active_sessions(caller.id).where(Session.id == session_id)
    ).scalar_one_or_none()
    if session is None:
        raise NotFound("No such session.")
    session.current = session.id == caller.session_id
    return session


def end_session(session: Session) -> None:
    """Log out / revoke one session."""
    session.revoked_at = utcnow()
    db.session.commit()
    emit("session_revoked", user_id=session.user_id, session_id=session.id)


def end_sessions(user_id: uuid.UUID, *, keep: uuid.UUID | None = None) -> None:
    """Revoke all of a user's sessions but `keep`, as one action."""
    revoked = accounts.revoke_sessions(user_id, keep=keep)
    db.session.commit()
    emit("session_revoked", user_id=user_id, all_sessions=True, revoked_sessions=revoked)
