"""Users and sessions: the operations behind the users and sessions resources."""

import logging
import uuid

from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError

from api import feed, link_tokens, mfa, ratelimit, records
from api.email_address import normalise_email
from api.errors import Conflict, NotFound
from api.events import emit
from api.extensions import db
from api.models import Session, User, utcnow
from api.pagination import list_binding, newest_first
from api.password_rules import password_problems
from api.passwords import hash_password
from api.ratelimit import LOG_IN  # noqa: F401  (the log-in counter, named where log-ins are)
from api.tokens import Caller

_log = logging.getLogger(__name__)


# --- users ----------------------------------------------------------------------------------


class EmailTaken(Conflict):
    """The address belongs to another account (the unique constraint said so)."""

    def __init__(self) -> None:
        super().__init__("This email address is already registered.")


def commit_unique_email(*, flush_only: bool = False) -> None:
    """Commit (or only flush): EmailTaken when the unique constraint finds the address taken."""
    try:
        if flush_only:
            db.session.flush()
        else:
            db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise EmailTaken() from None


def create_user(
    *,
    email: str,
    password: str,
    name: str | None = None,
    role: str = "user",
    verified: bool = False,
) -> User:
    """Register a user and mail a link + code that verifies the address, in one commit.
    `verified`: the operator vouches for the address (the first admin); no mail."""
    user = User(
        email=email,
        password_hash=hash_password(password),
        name=name,
        role=role,
        email_verified=verified,
    )
    db.session.add(user)
    commit_unique_email(flush_only=True)
    if not verified:
        link_tokens.mail_verification(user)
    db.session.commit()
    emit("user_registered", user_id=user.id)
    if not verified:
        emit("email_verification_sent", user_id=user.id)
    return user


def get_user(user_id: uuid.UUID) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


def visible_user(caller: Caller, user_id: uuid.UUID) -> User:
    """A user as `caller` may see it: admins see anyone, a user only itself (else NotFound,
    never Forbidden: whether an account exists is not the caller's to learn)."""
    if caller.role != "admin" and caller.id != user_id:
        raise NotFound("No such user.")
    return get_user(user_id)


def users_page(
    caller: Caller, filters: dict, *, limit: int, cursor: str | None
) -> tuple[list[User], str | None]:
    """Users matching the admin list's filters (`email`, already normalised, `role`,
    `is_active`), newest first."""
    stmt = db.select(User)
    for name in ("email", "role", "is_active"):
        if name in filters:
            stmt = stmt.where(getattr(User, name) == filters[name])
    binding = list_binding("users", caller.id, filters)
    return newest_first(stmt, User.id, binding=binding, limit=limit, cursor=cursor)


def find_user(email: str) -> User | None:
    return db.session.execute(db.select(User).filter_by(email=email)).scalar_one_or_none()


def update_own_profile(
    caller: Caller, changes: dict, *, current_password: str | None, code: str | None = None
) -> User:
    """A user's own change of name, at once, and of email, which only starts: a new address
    needs the current password (and a code, with MFA), must have no account, and waits in
    `pending_email` until the link + code mailed to it is confirmed (api/account_email.py)."""
    user = get_user(caller.id)
    changes = dict(changes)
    new_email = changes.pop("email", user.email)
    if new_email != user.email:
        mfa.confirm_identity(
            user, password=current_password, code=code, password_field="current_password"
        )
        if find_user(new_email) is not None:
            raise EmailTaken()
        ratelimit.enforce_mail_limit(new_email)
        link_tokens.mail_email_change(user, new_email, session_id=caller.session_id)
    update_user(user, changes, by=caller.id)  # commits the change's mails with the name
    if new_email != user.email:
        emit("email_change_requested", user_id=user.id, new_email=new_email)
    return user


def update_user(user: User, changes: dict, *, by: uuid.UUID) -> User:
    """Apply admin or self-service changes; a new role or deactivation ends every session.
    A new email (an admin's) is unverified, and ends every request mailed to the old one."""
    changed = sorted(name for name, value in changes.items() if getattr(user, name) != value)
    for name in changed:
        setattr(user, name, changes[name])
    if "role" in changed or ("is_active" in changed and not user.is_active):
        revoke_sessions(user.id)
    if "email" in changed:
        user.email_verified, user.pending_email = False, None
        link_tokens.revoke(user.id)
    commit_unique_email()
    actor = {} if by == user.id else {"by": str(by)}
    if "is_active" in changed and not user.is_active:
        emit("user_deactivated", user_id=user.id, fields=changed, **actor)
    elif changed:
        emit("user_updated", user_id=user.id, fields=changed, **actor)
    return user


def check_new_password(user: User, new: str) -> None:
    """The policy of registration: ValidationError (422) naming `new_password`."""
    problems = password_problems(new, user.email)
    if problems:
        raise ValidationError({"new_password": problems})


def set_password(user: User, new: str) -> None:
    """Store a new password (checked already). Every request mailed to the user dies with the
    old one, and a pending e-mail change too (API.md: Account e-mail). The caller commits."""
    user.password_hash = hash_password(new)
    user.updated_at = utcnow()
    user.pending_email = None
    link_tokens.revoke(user.id)


def change_password(
    user: User, *, current: str, new: str, keep_session: uuid.UUID, code: str | None = None
) -> None:
    """Set a new password, confirmed by the current one (and a code, with MFA); every other
    session ends."""
    mfa.confirm_identity(user, password=current, code=code, password_field="current_password")
    check_new_password(user, new)
    set_password(user, new)
    revoked = revoke_sessions(user.id, keep=keep_session)
    db.session.commit()
    emit("password_changed", user_id=user.id, revoked_sessions=revoked)


def delete_own_account(caller: Caller, *, password: str | None, code: str | None) -> None:
    """A user deletes its account, confirmed by its password (and a code, with MFA)."""
    user = get_user(caller.id)
    mfa.confirm_identity(user, password=password, code=code)
    delete_user(user, by=caller.id)


def reset_mfa(user: User, *, by: uuid.UUID) -> None:
    """An admin removes a user's second factor (a lost device); every session of the user
    ends, so that whoever holds one proves the account again."""
    had_factor = user.mfa_enabled or mfa.factor_of(user.id) is not None
    mfa.remove(user)
    revoked = revoke_sessions(user.id)
    db.session.commit()
    if had_factor:
        emit("mfa_disabled", user_id=user.id, by=str(by), revoked_sessions=revoked)


def delete_user(user: User, *, by: uuid.UUID) -> None:
    """Delete the user; its sessions, refresh tokens and records go with it (ON DELETE CASCADE).
    The records are deleted first, so that the change log has each of them, in the same
    commit (its lock is taken after every row lock: api/changes.py)."""
    user_id, actor = user.id, {} if by == user.id else {"by": str(by)}
    gone = records.delete_all_of(db.session.connection(), user_id)
    db.session.delete(user)
    db.session.flush()
    feed.log(db.session.connection(), gone)
    db.session.commit()
    feed.announce()
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
    return create_user(email=email, password=password, role="admin", verified=True)


def revoke_sessions(user_id: uuid.UUID, *, keep: uuid.UUID | None = None) -> int:
    """Revoke every live session of a user (but `keep`); the caller commits."""
    stmt = db.update(Session).where(Session.user_id == user_id, Session.revoked_at.is_(None))
    if keep is not None:
        stmt = stmt.where(Session.id != keep)
    return db.session.execute(stmt.values(revoked_at=utcnow())).rowcount
