"""Link tokens: what a mail carries to prove that its reader holds the address (API.md:
Account e-mail), and the two mails that accounts send with one.

One row per request mailed: a random token for the link, stored only as its SHA-256 (256
random bits need no slow hash); a 6-digit code for apps read on another device, stored only as
an HMAC under a key derived from the server secret (a million codes are hashed in a second, so
never a plain hash); the address the mail went to, and a deadline. A token is found by its
hash, a code by the newest live request sent to its address; only `spend` uses one up, so
opening a link (which mail scanners do) never does. Nothing here commits: the caller's commit
writes a request together with the mail that carries it, and spends a token together with what
it proved.
"""

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from uuid6 import uuid7

from api import mail
from api.constants import LINK_PURPOSES
from api.errors import InvalidRequest
from api.extensions import db
from api.keys import derive_key
from api.models import LinkToken, User, utcnow
from api.tokens import token_hash

VERIFY_EMAIL, RESET_PASSWORD, CHANGE_EMAIL = LINK_PURPOSES
MAX_FAILED_CODES = 5
CODE_DIGITS = 6
# One sentence for an unknown, used, expired, replaced or killed request: which one it was
# is nobody's business but the holder's, who has the mail.
INVALID = "The link or code is invalid, used or expired."


class InvalidLink(InvalidRequest):
    """No live request answers to the token, or to the address and code."""

    def __init__(self) -> None:
        super().__init__(INVALID)


@dataclass(frozen=True, slots=True)
class Issued:
    """What the mail of a new request carries; nothing of it is stored."""

    token: str
    code: str
    expires_minutes: int

    def context(self, path: str, email: str) -> dict:
        """The template context of the mail: link, code, address, lifetime. Never the
        account's name: whoever registers an address chooses it, and the mail must not carry
        a stranger's words to that address."""
        return {
            "link": mail.link(path, self.token),
            "code": self.code,
            "email": email,
            "expires_minutes": self.expires_minutes,
        }


def _code_hash(row_id: uuid.UUID, code: str) -> bytes:
    """The code under the server's code key, bound to its request (equal codes of two
    requests never have equal hashes)."""
    key = derive_key(current_app.config["COFFER_SECRET_KEY"], "coffer link-token code v1")
    return hmac.new(key, row_id.bytes + code.encode(), hashlib.sha256).digest()


def _live(now) -> tuple:
    return (
        LinkToken.used_at.is_(None),
        LinkToken.expires_at > now,
        LinkToken.failed_codes < MAX_FAILED_CODES,
    )


def issue(
    user_id: uuid.UUID,
    purpose: str,
    *,
    email: str,
    ttl: int,
    session_id: uuid.UUID | None = None,
) -> Issued:
    """A new request of `purpose`, which replaces every older one of the user's."""
    db.session.execute(
        db.delete(LinkToken).where(LinkToken.user_id == user_id, LinkToken.purpose == purpose)
    )
    token = secrets.token_urlsafe(32)  # 256 bits
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    row_id = uuid7()
    db.session.add(
        LinkToken(
            id=row_id,
            user_id=user_id,
            purpose=purpose,
            token_hash=token_hash(token),
            code_hash=_code_hash(row_id, code),
            email=email,
            session_id=session_id,
            failed_codes=0,
            expires_at=utcnow() + timedelta(seconds=ttl),
        )
    )
    return Issued(token=token, code=code, expires_minutes=max(1, ttl // 60))


def find(
    purposes: tuple[str, ...],
    *,
    token: str | None = None,
    email: str | None = None,
    code: str | None = None,
) -> LinkToken:
    """The live request that `token`, or `email` and `code`, names; InvalidLink otherwise."""
    live = db.select(LinkToken).where(LinkToken.purpose.in_(purposes), *_live(utcnow()))
    if token is not None:
        row = db.session.execute(
            live.where(LinkToken.token_hash == token_hash(token))
        ).scalar_one_or_none()
    else:
        newest = live.where(LinkToken.email == email).order_by(
            LinkToken.created_at.desc(), LinkToken.id.desc()
        )
        row = db.session.execute(newest.limit(1)).scalar_one_or_none()
        if row is not None and not _right_code(row, code or ""):
            row = None
    if row is None:
        raise InvalidLink()
    return row


def _right_code(row: LinkToken, code: str) -> bool:
    """Check a code against a request, as one of its MAX_FAILED_CODES guesses.

    The guess is counted before the comparison, in a committed compare-and-swap, so that of
    any number of parallel guesses at most MAX_FAILED_CODES are ever compared; a right code
    gives its guess back. The comparison takes the same time however much of the code is right.
    """
    guesses = LinkToken.failed_codes
    counted = db.session.execute(
        db.update(LinkToken)
        .where(LinkToken.id == row.id, guesses < MAX_FAILED_CODES)
        .values(failed_codes=guesses + 1)
    )
    db.session.commit()
    if counted.rowcount != 1:
        return False
    if not hmac.compare_digest(row.code_hash, _code_hash(row.id, code)):
        return False
    db.session.execute(
        db.update(LinkToken).where(LinkToken.id == row.id).values(failed_codes=guesses - 1)
    )
    db.session.commit()
    return True


def spend(row: LinkToken) -> None:
    """Use a request up, once: of two that present it at the same moment, one wins and the
    other gets InvalidLink. The caller commits, with what the request proved."""
    now = utcnow()
    spent = db.session.execute(
        db.update(LinkToken).where(LinkToken.id == row.id, *_live(now)).values(used_at=now)
    )
    if spent.rowcount != 1:
        db.session.rollback()
        raise InvalidLink()


def revoke(user_id: uuid.UUID, *purposes: str) -> None:
    """Kill the user's unspent requests of these purposes (of every purpose when none is
    named): what they would prove has changed. The caller commits."""
    stmt = db.delete(LinkToken).where(LinkToken.user_id == user_id, LinkToken.used_at.is_(None))
    if purposes:
        stmt = stmt.where(LinkToken.purpose.in_(purposes))
    db.session.execute(stmt)


def mail_verification(user: User) -> None:
    """Mail a link + code that verifies the user's address (replacing any earlier one)."""
    issued = issue(
        user.id,
        VERIFY_EMAIL,
        email=user.email,
        ttl=current_app.config["COFFER_VERIFY_TOKEN_TTL"],
    )
    context = issued.context("/verify-email", user.email)
    mail.enqueue(to=user.email, template="verify_email", context=context)


def mail_email_change(user: User, new_email: str, *, session_id: uuid.UUID) -> None:
    """Start a change of the user's address: a link + code to the new address, a notice
    (no link) to the old one; the change waits in `pending_email` until it is confirmed."""
    issued = issue(
        user.id,
        CHANGE_EMAIL,
        email=new_email,
        ttl=current_app.config["COFFER_VERIFY_TOKEN_TTL"],
        session_id=session_id,
    )
    user.pending_email = new_email
    context = {**issued.context("/verify-email", new_email), "old_email": user.email}
    mail.enqueue(to=new_email, template="email_change_confirm", context=context)
    notice = {"email": user.email, "new_email": new_email}
    mail.enqueue(to=user.email, template="email_change_notice", context=notice)
