"""Account e-mail: verifying an address, resetting a forgotten password, completing an e-mail
change (API.md: Account e-mail).

Registration's verification mail and the start of an e-mail change belong to the account
(api/accounts.py); the link tokens and their mails to api/link_tokens.py. What is here answers
the mails: every confirmation finds a live request, checks that what it proves still holds,
and spends it in the same commit as what it proves.
"""

from flask import current_app

from api import accounts, link_tokens, mail, ratelimit
from api.errors import Conflict
from api.events import emit
from api.extensions import db
from api.link_tokens import CHANGE_EMAIL, RESET_PASSWORD, VERIFY_EMAIL, InvalidLink
from api.models import LinkToken, User
from api.tokens import Caller

# The per-IP rate-limit counter that every mail-sending route shares (COFFER_RATE_LIMIT_AUTH).
MAIL = "mail"
VERIFICATION_SENT = "A mail with a verification link and code is on its way to your address."
RESET_SENT = (
    "If an account has this address, a mail with a link and a code to reset its password "
    "is on its way."
)


def resend_verification(caller: Caller) -> str:
    """Mail a new link + code for the caller's address (the older one dies); Conflict when
    the address is verified already."""
    user = accounts.get_user(caller.id)
    if user.email_verified:
        raise Conflict("The email address is verified already.")
    ratelimit.enforce_mail_limit(user.email)
    link_tokens.mail_verification(user)
    db.session.commit()
    emit("email_verification_sent", user_id=user.id)
    return VERIFICATION_SENT


def verify_email(
    *, token: str | None = None, email: str | None = None, code: str | None = None
) -> User:
    """Spend a verification or e-mail change request: the address is verified, or the
    pending change is done. InvalidLink (400) for any request that is not live."""
    found = link_tokens.find((VERIFY_EMAIL, CHANGE_EMAIL), token=token, email=email, code=code)
    user = _holder(found)
    if found.purpose == CHANGE_EMAIL:
        return _complete_change(user, found)
    link_tokens.spend(found)
    user.email_verified = True
    db.session.commit()
    emit("email_verified", user_id=user.id, email=user.email)
    return user


def _holder(found: LinkToken) -> User:
    """The user a request was mailed for, while it is active and the address the mail went
    to is still the one the request proves; else the request is as dead as an unknown one."""
    user = db.session.get(User, found.user_id)
    proves = user.pending_email if found.purpose == CHANGE_EMAIL else user.email
    if not user.is_active or found.email != proves:
        raise InvalidLink()
    return user


def _complete_change(user: User, found: LinkToken) -> User:
    """Swap the address (Conflict when it got an account meanwhile), which is verified now;
    revoke every session but the one that asked for the change."""
    if accounts.find_user(found.email) is not None:
        raise accounts.EmailTaken()
    link_tokens.spend(found)
    old_email = user.email
    user.email, user.pending_email, user.email_verified = found.email, None, True
    link_tokens.revoke(user.id)  # what was mailed to the old address proves nothing now
    revoked = accounts.revoke_sessions(user.id, keep=found.session_id)
    accounts.commit_unique_email()  # the constraint settles a race with a registration
    emit(
        "email_changed",
        user_id=user.id,
        old_email=old_email,
        new_email=user.email,
        revoked_sessions=revoked,
    )
    emit("email_verified", user_id=user.id, email=user.email)
    return user


def request_password_reset(email: str) -> str:
    """Mail a reset link + code to the address if it has an active account, and answer the
    same in the same time if it has none: the request only queues the mail, and the
    sender's preparer (below) decides whether there is anything to send."""
    ratelimit.enforce_mail_limit(email)
    mail.enqueue(to=email, template="reset_password", context={})
    db.session.commit()
    return RESET_SENT


@mail.preparer("reset_password")
def _prepare_reset(recipient: str, context: dict, retry: bool) -> dict | None:
    """At send time: a reset request for an active account (the older one dies), or no mail
    at all for an address without one. A retry issues a fresh request but records no second
    `password_reset_requested`: the user asked once."""
    user = accounts.find_user(recipient)
    if user is None or not user.is_active:
        return None
    issued = link_tokens.issue(
        user.id, RESET_PASSWORD, email=user.email, ttl=current_app.config["COFFER_RESET_TOKEN_TTL"]
    )
    if not retry:
        emit("password_reset_requested", user_id=user.id)
    return issued.context("/reset-password", user.email)


def confirm_password_reset(
    *,
    new_password: str,
    token: str | None = None,
    email: str | None = None,
    code: str | None = None,
) -> None:
    """Set a new password with a reset request (InvalidLink unless it is live; 422 under the
    policy, which leaves the request alive); revokes every session. The address is verified:
    the mail reached its reader. Multi-factor authentication, once there is any, stays on."""
    found = link_tokens.find((RESET_PASSWORD,), token=token, email=email, code=code)
    user = _holder(found)
    accounts.check_new_password(user, new_password)
    link_tokens.spend(found)
    newly_verified = not user.email_verified
    user.email_verified = True
    accounts.set_password(user, new_password)
    revoked = accounts.revoke_sessions(user.id)
    db.session.commit()
    emit("password_reset_completed", user_id=user.id, revoked_sessions=revoked)
    if newly_verified:
        emit("email_verified", user_id=user.id, email=user.email)
