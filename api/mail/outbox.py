"""The outbox: a mail is a row, written in the transaction of the action that causes it.

`enqueue` only adds the row to the session; the caller's own commit writes it together with
the action, so no mail goes out for an action that rolled back and none is lost once it
committed. The sender (api.mail.sender) delivers the row after the commit.

A `preparer` completes a row at send time, inside the sender's transaction: it returns the
context to render (with a token it creates there, say), or None to drop the row unsent.
"""

import base64
import threading
import uuid
from collections.abc import Callable
from datetime import datetime

import orjson
import sqlalchemy as sa
from cryptography.fernet import Fernet
from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Mapped, mapped_column
from uuid6 import uuid7

from api.extensions import db
from api.keys import derive_key
from api.mail import render
from api.models import UTCDateTime, utcnow

# fn(recipient, context, retry) -> context | None; `retry` is False on the first attempt only.
Preparer = Callable[[str, dict, bool], dict | None]

# template -> its preparer; tests may swap one with monkeypatch.setitem.
PREPARERS: dict[str, Preparer] = {}

# Set when this process commits a transaction that enqueued mail: the sender wakes at once.
committed = threading.Event()
_ENQUEUED = "coffer_mail_enqueued"


class OutboxMail(db.Model):
    """One mail to send. `next_attempt_at` is NULL once nothing is left to do: sent
    (`sent_at`), given up (`failed_at`) or dropped by its preparer (neither). `attempts`
    counts the failed tries; `claimed_until` is the lease of the sender sending it now."""

    __tablename__ = "mail_outbox"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    recipient: Mapped[str] = mapped_column(sa.String(320))
    template: Mapped[str] = mapped_column(sa.String(100))
    # What the template renders; emptied once the row is done (it may hold a link).
    context: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(sa.String(500))

    # The rows still to send, in the order they are due; done rows stay out of the index.
    __table_args__ = (
        sa.Index(
            "ix_mail_outbox_due",
            "next_attempt_at",
            sqlite_where=sa.text("next_attempt_at IS NOT NULL"),
            postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
        ),
    )


def _fernet() -> Fernet:
    key = derive_key(current_app.config["COFFER_SECRET_KEY"], "coffer mail outbox v1")
    return Fernet(base64.urlsafe_b64encode(key))


def seal(context: dict) -> dict:
    """A context as the outbox stores it: encrypted (Fernet, under a key derived from the
    server secret for this purpose only), since it may hold a link's token and its code, which
    the database must never hold in clear."""
    if not context:
        return {}
    return {"sealed": _fernet().encrypt(orjson.dumps(context)).decode()}


def unseal(stored: dict) -> dict:
    """The context that `seal` stored; InvalidToken when another secret sealed it."""
    if "sealed" not in stored:
        return dict(stored)
    return orjson.loads(_fernet().decrypt(stored["sealed"].encode()))


def enqueue(*, to: str, template: str, context: dict) -> None:
    """Add a mail to the session, without committing: the caller's commit sends it.
    ValueError when `template` does not exist."""
    render.check(template)
    row = OutboxMail(recipient=to, template=template, context=seal(context))
    row.created_at = row.next_attempt_at = utcnow()
    db.session.add(row)
    db.session.info[_ENQUEUED] = True


def preparer(template: str) -> Callable[[Preparer], Preparer]:
    """Register `fn(recipient, context, retry) -> context | None` for the rows of `template`.

    The sender calls it in its own transaction just before rendering the row, again on every
    retry (`retry` is then True: what happens once per mail, such as a security event, is
    left to the first attempt): whatever it writes commits before the mail leaves. None drops
    the row unsent.
    """

    def register(fn: Preparer) -> Preparer:
        if PREPARERS.setdefault(template, fn) is not fn:
            raise ValueError(f"the mail template {template!r} has a preparer already")
        return fn

    return register


@event.listens_for(db.session, "after_commit")
def _wake_the_sender(session) -> None:
    if session.info.pop(_ENQUEUED, False):
        committed.set()


@event.listens_for(db.session, "after_soft_rollback")
def _forget_enqueued(session, _previous_transaction) -> None:
    session.info.pop(_ENQUEUED, None)
