"""Sessions: log-in, refresh-token rotation with reuse detection, and revocation.

A session is one log-in on one device. Its access tokens are verified by api/tokens.py; what
happens here is what starts, renews and ends it.
"""

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from api import accounts, mfa, ratelimit
from api.errors import EmailNotVerified, MfaRequired, NotFound, Unauthenticated, WrongMfaCode
from api.events import emit
from api.extensions import db
from api.models import MfaChallenge, RefreshToken, Session, User, UTCDateTime, utcnow
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
MFA_REQUIRED = "The password is right; the account wants a code of its second factor."
INVALID_MFA_TOKEN = "The mfa_token is invalid, used or expired: log in again."
WRONG_MFA_CODE = "The code is incorrect or was used already."
MFA_METHODS = ["totp", "recovery_code"]
MFA_TOKEN_TTL = timedelta(minutes=5)
MFA_WRONG_CODES = 5  # wrong codes that kill an mfa_token
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
    """Check credentials (the same work and the same 401 whatever is wrong); start a session,
    or, for an account with a second factor, MfaRequired with the token of the second step.

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
    device = {"device_name": device_name, "user_agent": (user_agent or "")[:512] or None, "ip": ip}
    if user.mfa_enabled:
        raise MfaRequired(MFA_REQUIRED, mfa_token=_challenge(user, device), methods=MFA_METHODS)
    return _start_session(user, amr="pwd", **device)  # also saves a rehashed password


def _start_session(user: User, *, amr: str, device_name, user_agent, ip) -> IssuedTokens:
    ttl = timedelta(seconds=current_app.config["COFFER_REFRESH_TOKEN_TTL"])
    session = Session(
        user_id=user.id,
        device_name=device_name,
        user_agent=user_agent,
        ip=ip,
        amr=amr,
        expires_at=utcnow() + ttl,
    )
    db.session.add(session)
    db.session.flush()
    refresh_token = _issue_refresh_token(session)
    db.session.commit()
    emit(
        "session_created",
        user_id=user.id,
        session_id=session.id,
        device_name=device_name,
        amr=amr.split(),
    )
    return _issued(user, session, refresh_token)


def _challenge(user: User, device: dict) -> str:
    """The second step of a log-in: a single-use mfa_token, stored as a hash. The user's
    spent and expired challenges go, so that they never pile up."""
    db.session.execute(
        sa.delete(MfaChallenge).where(
            MfaChallenge.user_id == user.id,
            sa.or_(MfaChallenge.used_at.is_not(None), MfaChallenge.expires_at <= utcnow()),
        )
    )
    mfa_token = secrets.token_urlsafe(32)
    db.session.add(
        MfaChallenge(
            user_id=user.id,
            token_hash=token_hash(mfa_token),
            expires_at=utcnow() + MFA_TOKEN_TTL,
            **device,
        )
    )
    db.session.commit()  # also saves a rehashed password
    return mfa_token


def complete_mfa_log_in(
    *, mfa_token: str, code: str | None = None, recovery_code: str | None = None
) -> IssuedTokens:
    """The second step: a code of the user's authenticator app, or one of its recovery codes,
    turns a live mfa_token into a session whose `amr` is pwd + otp. A wrong code is 401 and
    counts against the token (5 kill it) and under the account's log-in limit."""
    challenge = _live_challenge(mfa_token)
    user = db.session.get(User, challenge.user_id)
    ratelimit.enforce_account_limit(accounts.LOG_IN, user.email)
    factor = mfa.factor_of(user.id)
    if code is not None:
        right = factor is not None and mfa.accept_totp(factor, code)
    else:
        right = mfa.accept_recovery_code(user.id, recovery_code)
    if not right:
        raise WrongMfaCode(WRONG_MFA_CODE, attempts_left=_count_wrong_code(challenge))
    spent = db.session.execute(
        sa.update(MfaChallenge)
        .where(MfaChallenge.id == challenge.id, MfaChallenge.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # a parallel second step spent it first
        db.session.rollback()
        raise Unauthenticated(INVALID_MFA_TOKEN, reason=None)
    device = {"device_name": challenge.device_name, "user_agent": challenge.user_agent}
    issued = _start_session(user, amr="pwd otp", ip=challenge.ip, **device)
    if recovery_code is not None:
        emit("recovery_code_used", user_id=user.id, session_id=issued.session.id)
    return issued


def _live_challenge(mfa_token: str) -> MfaChallenge:
    """The live challenge of an mfa_token, whose user may still log in; else 401."""
    challenge = db.session.execute(
        db.select(MfaChallenge).where(MfaChallenge.token_hash == token_hash(mfa_token))
    ).scalar_one_or_none()
    if challenge is None or challenge.used_at is not None or challenge.expires_at <= utcnow():
        raise Unauthenticated(INVALID_MFA_TOKEN, reason=None)
    user = db.session.get(User, challenge.user_id)
    if not user.is_active or not user.mfa_enabled:
        raise Unauthenticated(INVALID_MFA_TOKEN, reason=None)
    return challenge


def _count_wrong_code(challenge: MfaChallenge) -> int:
    """One more wrong code, counted in the database (parallel guesses all count); the fifth
    kills the challenge. The codes it has left."""
    failed = MfaChallenge.failed_codes + 1
    failed_codes = db.session.scalar(
        sa.update(MfaChallenge)
        .where(MfaChallenge.id == challenge.id)
        .values(
            failed_codes=failed,
            used_at=sa.case(
                (failed >= MFA_WRONG_CODES, sa.literal(utcnow(), UTCDateTime)),
                else_=MfaChallenge.used_at,
            ),
        )
        .returning(MfaChallenge.failed_codes)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    emit("mfa_failed", user_id=challenge.user_id, step="log-in")
    return max(MFA_WRONG_CODES - failed_codes, 0)


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
