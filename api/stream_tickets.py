"""Stream tickets: what lets a browser's EventSource, which cannot send an Authorization
header, open one change stream. A ticket is no token: it is single-use, lives 30 seconds,
opens one stream in the name of the session that asked for it, and grants nothing else.
Only its SHA-256 is stored; spending it deletes it, in one statement."""

import hashlib
import secrets
from datetime import timedelta

import sqlalchemy as sa

from api import database, tokens
from api.errors import Unauthenticated
from api.models import StreamTicket, utcnow
from api.tokens import Caller

TICKET_TTL = 30  # seconds
_tickets = StreamTicket.__table__
_c = _tickets.c


def _hash(ticket: str) -> bytes:
    return hashlib.sha256(ticket.encode()).digest()


def issue(caller: Caller) -> str:
    """A new ticket for the caller's session; expired tickets are swept on the way."""
    ticket = secrets.token_urlsafe(32)
    now = utcnow()
    conn = database.connection()
    conn.execute(sa.delete(_tickets).where(_c.expires_at <= now))
    conn.execute(
        sa.insert(_tickets).values(
            token_hash=_hash(ticket),
            session_id=caller.session_id,
            expires_at=now + timedelta(seconds=TICKET_TTL),
        )
    )
    conn.commit()
    return ticket


def redeem(ticket: str) -> Caller:
    """Spend a ticket: the caller of its session, if that is still live. A ticket that is
    unknown, spent or expired, or whose session has ended, is Unauthenticated."""
    conn = database.connection()
    stmt = sa.delete(_tickets).where(_c.token_hash == _hash(ticket)).returning(*_c)
    row = conn.execute(stmt).first()
    conn.commit()
    if row is None or row.expires_at <= utcnow():
        raise Unauthenticated("The stream ticket is unknown, spent or expired.")
    caller = tokens.session_caller(row.session_id)
    if caller is None:
        raise Unauthenticated("The session of the stream ticket has ended.")
    return caller
