"""Users and sessions: the operations behind the users and sessions resources."""

import logging
import uuid
from datetime import timedelta

from flask import current_app
from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError

from api import ratelimit
from api.auth import (
    child_refresh_token,
    hash_password,
    new_refresh_token,
    password_problems,
    token_hash,
    unauthorized,
    verify_password,
)
from api.email_address import normalise_email
from api.errors import Problem
from api.events import emit
from api.extensions import db
from api.models import RefreshToken, Session, User, utcnow

INVALID_CREDENTIALS = "The email or password is incorrect."
INVALID_REFRESH_TOKEN = "The refresh token is invalid, expired or revoked."
# The rate-limit counter of log-ins: per client IP, and per account as "log-in-account"
# (api.ratelimit.auth_limit), which password confirmations share.
LOG_IN = "log-in"
_log = logging.getLogger(__name__)


# --- users ----------------------------------------------------------------------------------


class EmailTaken(Problem):
    """The address belongs to another account (the unique constraint said so)."""

    def __init__(self) -> None:
        super().__init__(409, "This email address is already registered.")


def _commit_unique_email() -> None:
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise EmailTaken() from None


def create_user(*, email: str, password: str, name: str | None = None, role: str = "user") -> User:
    user = User(email=email, password_hash=hash_password(password), name=name, role=role)
    db.session.add(user)
    _commit_unique_email()
    emit("user_registered", user_id=user.id)
    return user


def get_user(user_id: uuid.UUID) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise Problem(404, "No such user.")
    return user


def user_list(filters: dict):
    """Users matching the admin list's filters (`email`, `role`, `is_active`), as
    `user_list_query` loads them: the email already normalised."""
    stmt = db.select(User)
    if "email" in filters:
        stmt = stmt.where(User.email == filters["email"])
    if "role" in filters:
        stmt = stmt.where(User.role == filters["role"])
    if "is_active" in filters:
        stmt = stmt.where(User.is_active == filters["is_active"])
    return stmt


def find_user(email: str) -> User | None:
    return db.session.execute(db.select(User).filter_by(email=email)).scalar_one_or_none()


def require_password(user: User, password: str | None, field: str) -> None:
    """A confirmation of the user's own password; wrong or missing is 422 naming the field.

    Every attempt, right or wrong, counts under the account's log-in limit before the password
    is checked (429 once it is spent): else a stolen access token would be an unlimited oracle
    for the password, around the limit that log-in puts on guessing it.
    """
    if not password:
        raise ValidationError({field: ["The password is incorrect."]})
    ratelimit.enforce(ratelimit.counters().auth, f"{LOG_IN}-account", user.email)
    if not verify_password(user, password):
        raise ValidationError({field: ["The password is incorrect."]})


def update_user(user: User, changes: dict, *, by: uuid.UUID) -> User:
    """Apply admin or self-service changes; a new role or deactivation ends every session."""
    changed = sorted(name for name, value in changes.items() if getattr(user, name) != value)
    old_email = user.email
    for name in changed:
        setattr(user, name, changes[name])
    if "role" in changed or ("is_active" in changed and not user.is_active):
        revoke_sessions(user.id)
    _commit_unique_email()
    actor = {} if by == user.id else {"by": str(by)}
    if "is_active" in changed and not user.is_active:
        emit("user_deactivated", user_id=user.id, fields=changed, **actor)
    elif "email" in changed and not actor:
        emit("email_changed", user_id=user.id, old_email=old_email, new_email=user.email)
    elif changed:
        emit("user_updated", user_id=user.id, fields=changed, **actor)
    return user


def change_password(user: User, *, current: str, new: str, keep_session: uuid.UUID) -> None:
    require_password(user, current, "current_password")
    problems = password_problems(new, user.email)
    if problems:
        raise ValidationError({"new_password": problems})
    user.password_hash = hash_password(new)
    user.updated_at = utcnow()
    revoked = revoke_sessions(user.id, keep=keep_session)
    db.session.commit()
    emit("password_changed", user_id=user.id, revoked_sessions=revoked)


def delete_user(user: User, *, by: uuid.UUID) -> None:
    """Delete the user; its sessions, refresh tokens and records go with it (ON DELETE CASCADE)."""
    user_id, actor = user.id, {} if by == user.id else {"by": str(by)}
    db.session.delete(user)
    db.session.commit()
    emit("user_deleted", user_id=user_id, **actor)


def ensure_admin(email: str, password: str) -> User:
    """The operator's explicit `create-admin`: create this admin, or promote and re-activate
    the account of the address (its password is left alone). ValueError for a bad address or
    a weak password."""
    email = normalise_email(email)
    user = find_user(email)
    if user is None:
        try:
            return _create_admin(email, password)
        except EmailTaken:  # created by someone else at the same moment
            user = find_user(email)
    if user.role != "admin" or not user.is_active:
        update_user(user, {"role": "admin", "is_active": True}, by=user.id)
    return user


def bootstrap_admin(email: str, password: str) -> User | None:
    """The first admin, from the start-up settings: created only while there is no admin at
    all, active or not (API.md: Users). Returns it, or None when it created nobody.

    It never promotes or re-activates an account: whoever registered the address after the
    bootstrap admin was deleted or renamed would become admin at the next restart, and an
    admin deactivated on purpose would come back. ValueError for a bad address or password.
    """
    email = normalise_email(email)
    if db.session.execute(db.select(User.id).filter_by(role="admin").limit(1)).first():
        return None
    if find_user(email) is not None:
        _log.warning(
            "admin bootstrap: %s is an account that is not an admin and stays so; "
            "promote it with `flask --app wsgi create-admin`",
            email,
        )
        return None
    try:
        return _create_admin(email, password)
    except EmailTaken:  # another instance, starting at the same moment, created it
        return None


def _create_admin(email: str, password: str) -> User:
    problems = password_problems(password, email)
    if problems:
        raise ValueError(f"the admin password is not acceptable: {' '.join(problems)}")
    return create_user(email=email, password=password, role="admin")


# --- sessions -------------------------------------------------------------------------------


def _issue_refresh_token(session: Session, token: str | None = None) -> str:
    token = token or new_refresh_token()
    db.session.add(RefreshToken(session_id=session.id, token_hash=token_hash(token)))
    return token


def log_in(
    *, email: str, password: str, device_name: str | None, user_agent: str | None, ip: str
) -> tuple[User, Session, str]:
    """Check credentials (the same work and the same 401 whatever is wrong); start a session."""
    user = find_user(email)
    if not verify_password(user, password) or not user.is_active:
        # No user id for an unknown email: nothing that anyone could read back.
        emit("login_failed", user_id=user.id if user else None)
        raise unauthorized(INVALID_CREDENTIALS, error=None)
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
    return user, session, refresh_token


def refresh(presented: str) -> tuple[User, Session, str]:
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
        raise unauthorized(INVALID_REFRESH_TOKEN)
    token, session, user = row
    now = utcnow()
    if session.revoked_at is not None or session.expires_at <= now or not user.is_active:
        raise unauthorized(INVALID_REFRESH_TOKEN)
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
            return user, session, child
        db.session.rollback()  # a parallel refresh rotated it first
        token = db.session.get(RefreshToken, token.id, populate_existing=True)
    if _within_grace(token, child, now):
        emit("session_refreshed", user_id=user.id, session_id=session.id, replayed=True)
        return user, session, child
    session.revoked_at = now
    db.session.commit()
    emit("refresh_reuse_detected", user_id=user.id, session_id=session.id)
    raise unauthorized(INVALID_REFRESH_TOKEN)


def _within_grace(token: RefreshToken, child: str, now) -> bool:
    """Is `token` the immediate parent of the current token, rotated moments ago?"""
    interval = current_app.config["COFFER_REFRESH_REUSE_INTERVAL"]
    if interval <= 0 or now - token.rotated_at > timedelta(seconds=interval):
        return False
    current = db.session.execute(
        db.select(RefreshToken.rotated_at).where(RefreshToken.token_hash == token_hash(child))
    ).first()
    return current is not None and current.rotated_at is None


def active_sessions(user_id: uuid.UUID):
    return db.select(Session).where(
        Session.user_id == user_id, Session.revoked_at.is_(None), Session.expires_at > utcnow()
    )


def get_session(user_id: uuid.UUID, session_id: uuid.UUID) -> Session:
    session = db.session.execute(
        active_sessions(user_id).where(Session.id == session_id)
    ).scalar_one_or_none()
    if session is None:
        raise Problem(404, "No such session.")
    return session


def end_session(session: Session) -> None:
    """Log out / revoke one session."""
    session.revoked_at = utcnow()
    db.session.commit()
    emit("session_revoked", user_id=session.user_id, session_id=session.id)


def end_sessions(user_id: uuid.UUID, *, keep: uuid.UUID | None = None) -> None:
    """Revoke all of a user's sessions but `keep`, as one action."""
    revoked = revoke_sessions(user_id, keep=keep)
    db.session.commit()
    emit("session_revoked", user_id=user_id, all_sessions=True, revoked_sessions=revoked)


def revoke_sessions(user_id: uuid.UUID, *, keep: uuid.UUID | None = None) -> int:
    """Revoke every live session of a user (but `keep`); the caller commits."""
    stmt = db.update(Session).where(Session.user_id == user_id, Session.revoked_at.is_(None))
    if keep is not None:
        stmt = stmt.where(Session.id != keep)
    return db.session.execute(stmt.values(revoked_at=utcnow())).rowcount
