"""`flask --app wsgi mail …`: the outbox from the command line (coffer/cli.py registers it)."""

from datetime import timedelta

import click
import sqlalchemy as sa
from flask.cli import AppGroup

from api.extensions import db
from api.mail.outbox import OutboxMail
from api.mail.sender import BATCH, deliver
from api.models import utcnow

mail = AppGroup("mail", help="The outbox of account mail (API.md: Account e-mail).")


@mail.command("send")
def send() -> None:
    """Deliver every mail that is due now, once, and print how many were sent.

    Safe beside running senders: each mail goes out under one lease. With COFFER_MAIL_SENDER
    off, run this from cron every minute instead.
    """
    sent = retrying = failed = 0
    while True:
        outcome = deliver(limit=BATCH)
        sent, retrying, failed = (
            sent + outcome.sent,
            retrying + outcome.retrying,
            failed + outcome.failed,
        )
        if outcome.claimed < BATCH:
            break
    click.echo(f"sent {sent} mails" + _also(retrying, "to retry") + _also(failed, "given up"))


def _also(count: int, what: str) -> str:
    return f", {count} {what}" if count else ""


@mail.command("purge")
@click.option("--days", default=30, show_default=True, help="Keep finished mail this long.")
def purge(days: int) -> None:
    """Delete the rows of mail sent, given up or dropped more than DAYS ago."""
    cutoff = utcnow() - timedelta(days=days)
    done = db.session.execute(
        sa.delete(OutboxMail).where(
            OutboxMail.next_attempt_at.is_(None), OutboxMail.created_at < cutoff
        )
    ).rowcount
    db.session.commit()
    click.echo(f"purged {done} mails")
