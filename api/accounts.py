"""Users and sessions: the operations behind the users and sessions resources."""

import logging
import uuid

from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError

from api import ratelimit
from api.email_address import normalise_email
from api.errors import Conflict, NotFound
from api.events import emit
from api.extensions import db
from api.models import Session, User, utcnow
from api.pagination import list_binding, newest_first
from api.passwords import hash_password, password_problems, verify_password
from api.tokens import Caller

# The rate-limit counter of log-ins: per client IP, and per account, which password
# confirmations share.
LOG_IN = "log-in"
_log = logging.getLogger(__name__)


# --- users ----------------------------------------------------------------------------------


class EmailTaken(Conflict):
    """The address belongs to another account (the unique constraint said so)."""

    def __init__(self) -> None:
        super().__init__("This email address is already registered.")


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


def require_password(user: User, password: str | None, field: str) -> None:
    """A confirmation of the user's own password; wrong or missing is 422 naming the field.

    Every attempt, right or wrong, counts under the account's log-in limit before the password
    is checked (429 once it is spent): else a stolen access token would be an unlimited oracle
    for the password, around the limit that log-in puts on guessing it.
    """
    if not password:
        raise ValidationError({field: ["The password is incorrect."]})
    ratelimit.enforce_account_limit(LOG_IN, user.email)
    if not verify_password(user, password):
        raise ValidationError({field: ["The password is incorrect."]})


def update_own_profile(caller: Caller, changes: dict, *, current_password: str | None) -> User:
    """A user's own change of name or email; a new email needs the current password."""
    user = get_user(caller.id)
    if "email" in changes and changes["email"] != user.email:
        require_password(user, current_password, "current_password")
    return update_user(user, changes, by=caller.id)


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


def revoke_sessions(user_id: uuid.UUID, *, keep: uuid.UUID | None = None) -> int:
    """Revoke every live session of a user (but `keep`); the caller commits."""
    stmt = db.update(Session).where(Session.user_id == user_id, Session.revoked_at.is_(None))
    if keep is not None:
        stmt = stmt.where(Session.id != keep)
    return db.session.execute(stmt.values(revoked_at=utcnow())).rowcount
