"""The sender: claims the due rows of the outbox, sends them, records what happened.

Several workers and instances send from one outbox, and never one mail twice in normal
operation: a row is sent only under a lease (`claimed_until`) that its sender took in a
committed transaction. On PostgreSQL the due rows are locked with SELECT … FOR UPDATE SKIP
LOCKED, so concurrent senders take different rows without waiting; on SQLite one UPDATE …
RETURNING leases them under SQLite's single write lock. Just before its send, each row's
lease is renewed by compare-and-swap: a row whose lease ran out while its batch waited is
left to whoever leased it since. A sender killed mid-send leaves a lease that runs out, and
another sender retries the row a minute later: a mail is never lost, and goes twice only when
its sender died between the server's acceptance and the record of it.

A failed send is retried after 5 s, 10 s, 20 s, 40 s … (at most 5 minutes, a little less at
random, so that senders spread out), until COFFER_MAIL_RETRY_FOR seconds after the mail was
enqueued; then it is given up (`failed_at`) and logged. Requests never wait on any of this:
deliver() runs in a thread of its own (api.mail.background) or in `flask mail send`.
"""

import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage

import sqlalchemy as sa
from flask import current_app

from api.extensions import db
from api.mail import render
from api.mail.outbox import PREPARERS, OutboxMail, unseal
from api.mail.transport import Connection, MailError, Transport, Unavailable, current_transport
from api.models import utcnow

LEASE = timedelta(seconds=60)
FIRST_RETRY = 5.0  # seconds; doubled on each failure
MAX_RETRY = 300.0
BATCH = 50

log = logging.getLogger(__name__)
outbox = OutboxMail.__table__


def clock() -> datetime:
    """Now, for every decision of the sender; tests pass `now` to deliver_due instead."""
    return utcnow()


def backoff(attempts: int) -> timedelta:
    """The pause after the `attempts`-th failure: 5 s doubling up to 5 min, minus up to 20 %."""
    seconds = min(FIRST_RETRY * 2 ** (min(attempts, 20) - 1), MAX_RETRY)
    return timedelta(seconds=seconds * random.uniform(0.8, 1.0))


@dataclass
class Outcome:
    claimed: int = 0
    sent: int = 0
    dropped: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def deliver_due(*, limit: int = BATCH, now: datetime | None = None) -> int:
    """Claim up to `limit` due mails, send them, and return how many were sent.
    `now` stands for the clock (tests: a retry's time without waiting for it)."""
    return deliver(limit=limit, now=now).sent


def deliver(
    *, limit: int = BATCH, now: datetime | None = None, stop: threading.Event | None = None
) -> Outcome:
    """deliver_due with the whole outcome; a set `stop` ends the batch after the current mail
    and hands the rest back to the outbox at once."""
    tick: Callable[[], datetime] = (lambda: now) if now is not None else clock
    claims = _claim(limit, tick())
    outcome = Outcome(claimed=len(claims))
    if not claims:
        return outcome
    batch = _Batch(current_transport())
    try:
        for position, (row_id, lease) in enumerate(claims):
            if stop is not None and stop.is_set():
                _release(claims[position:])
                break
            _deliver_one(row_id, lease, tick, batch, outcome)
    finally:
        batch.close()
    if outcome.retrying:
        errors = "; ".join(dict.fromkeys(outcome.errors))
        log.warning("%d mails not sent, to be retried: %s", outcome.retrying, errors)
    return outcome


class _Batch:
    """One connection for a batch of mail, opened at the first send. When the server is
    unavailable, the rest of the batch waits for a retry without trying again."""

    def __init__(self, chosen: Transport):
        self.transport = chosen
        self.connection: Connection | None = None
        self.down: Unavailable | None = None

    def send(self, message: EmailMessage) -> None:
        if self.connection is None:
            try:
                self.connection = self.transport.connect()
            except Unavailable as exc:
                self.down = exc
                raise
        try:
            self.connection.send(message)
        except Exception:
            self.close()  # the next mail starts a new session
            raise

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _due(now: datetime):
    return sa.and_(
        outbox.c.next_attempt_at <= now,
        sa.or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until <= now),
    )


def _claim(limit: int, now: datetime) -> list[tuple]:
    """Lease up to `limit` due rows and commit: [(id, lease)]."""
    lease = now + LEASE
    pick = sa.select(outbox.c.id).where(_due(now)).order_by(outbox.c.next_attempt_at).limit(limit)
    if db.session.get_bind().dialect.name == "postgresql":
        ids = db.session.execute(pick.with_for_update(skip_locked=True)).scalars().all()
        if ids:
            claim = sa.update(outbox).where(outbox.c.id.in_(ids)).values(claimed_until=lease)
            db.session.execute(claim)
    elif db.session.execute(pick.limit(1)).first() is None:  # read first: no write lock
        ids = []
    else:
        claim = sa.update(outbox).where(outbox.c.id.in_(pick)).values(claimed_until=lease)
        ids = db.session.execute(claim.returning(outbox.c.id)).scalars().all()
    db.session.commit()
    return [(row_id, lease) for row_id in sorted(ids)]


def _renew(row_id, lease: datetime, now: datetime) -> tuple[datetime, sa.Row] | None:
    """A fresh lease on the row and the row itself, or None when the lease is no longer ours."""
    renewed = now + LEASE
    result = db.session.execute(
        sa.update(outbox)
        .where(outbox.c.id == row_id, outbox.c.claimed_until == lease)
        .values(claimed_until=renewed)
    )
    if result.rowcount != 1:
        db.session.rollback()
        return None
    row = db.session.execute(sa.select(outbox).where(outbox.c.id == row_id)).one()
    db.session.commit()
    return renewed, row


def _deliver_one(row_id, lease, tick, batch: _Batch, outcome: Outcome) -> None:
    renewal = _renew(row_id, lease, tick())
    if renewal is None:
        return
    lease, row = renewal
    if batch.down is not None:
        _retry(row, lease, str(batch.down), tick(), outcome)
        return
    try:
        message = _compose(row, tick())
        db.session.commit()  # what the preparer wrote (its token) before the mail leaves
    except Exception as exc:
        db.session.rollback()
        log.exception("mail %s (%s) could not be prepared or rendered", row.id, row.template)
        _retry(row, lease, f"{type(exc).__name__}: {exc}", tick(), outcome)
        return
    if message is None:
        _settle(row.id, lease, next_attempt_at=None, context={})
        outcome.dropped += 1
        return
    try:
        batch.send(message)
    except MailError as exc:
        _retry(row, lease, str(exc), tick(), outcome)
        return
    except Exception as exc:
        log.exception("mail %s (%s) could not be sent", row.id, row.template)
        _retry(row, lease, f"{type(exc).__name__}: {exc}", tick(), outcome)
        return
    _settle(row.id, lease, sent_at=tick(), next_attempt_at=None, context={}, last_error=None)
    outcome.sent += 1


def _compose(row: sa.Row, now: datetime) -> EmailMessage | None:
    context = unseal(row.context)
    prepare = PREPARERS.get(row.template)
    if prepare is not None:
        context = prepare(row.recipient, context, row.attempts > 0)
        if context is None:
            return None
    return render.compose(to=row.recipient, template=row.template, context=context, now=now)


def _retry(row: sa.Row, lease: datetime, error: str, now: datetime, outcome: Outcome) -> None:
    attempts = row.attempts + 1
    deadline = row.created_at + timedelta(seconds=current_app.config["COFFER_MAIL_RETRY_FOR"])
    error = " ".join(error.split())[: outbox.c.last_error.type.length]
    if now < deadline:
        next_attempt = min(now + backoff(attempts), deadline)
        _settle(row.id, lease, attempts=attempts, next_attempt_at=next_attempt, last_error=error)
        outcome.retrying += 1
        outcome.errors.append(error)
        return
    done = {"next_attempt_at": None, "failed_at": now, "context": {}}
    _settle(row.id, lease, attempts=attempts, last_error=error, **done)
    outcome.failed += 1
    log.error("mail %s (%s) given up after %d attempts: %s", row.id, row.template, attempts, error)


def _settle(row_id, lease: datetime, **values) -> None:
    """Record the outcome and end the lease, if the lease is still ours."""
    result = db.session.execute(
        sa.update(outbox)
        .where(outbox.c.id == row_id, outbox.c.claimed_until == lease)
        .values(claimed_until=None, **values)
    )
    db.session.commit()
    if result.rowcount != 1:
        log.warning("mail %s: its lease ran out before its outcome was recorded", row_id)


def _release(claims: Sequence[tuple]) -> None:
    """Hand leased rows back to the outbox unsent, due at once."""
    for row_id, lease in claims:
        db.session.execute(
            sa.update(outbox)
            .where(outbox.c.id == row_id, outbox.c.claimed_until == lease)
            .values(claimed_until=None)
        )
    db.session.commit()
