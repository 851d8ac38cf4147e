"""Security events: the account operations send blinker signals, one subscriber stores them.

Signals are sent after the operation's own commit, so a failed operation records nothing (a
failed log-in is itself the event). Events never carry secrets or tokens.
"""

import uuid

from blinker import Namespace
from flask import g, has_request_context, request

from api.extensions import db
from api.models import SecurityEvent
from api.web import client_ip

signals = Namespace()

TYPES = (
    "user_registered",
    "session_created",
    "login_failed",
    "session_refreshed",
    "refresh_reuse_detected",
    "session_revoked",
    "password_changed",
    "email_changed",
    "user_updated",
    "user_deactivated",
    "user_deleted",
)
SIGNALS = {name: signals.signal(name) for name in TYPES}


def emit(
    event_type: str,
    *,
    user_id: uuid.UUID | None,
    session_id: uuid.UUID | None = None,
    **details,
) -> None:
    """Send the signal for `event_type`; whoever subscribes decides what to do with it."""
    SIGNALS[event_type].send(event_type, user_id=user_id, session_id=session_id, details=details)


def _store(event_type: str, *, user_id, session_id, details) -> None:
    event = SecurityEvent(type=event_type, user_id=user_id, session_id=session_id, details=details)
    if has_request_context():
        event.ip = client_ip()
        event.user_agent = (request.user_agent.string or "")[:512] or None
        caller = g.get("caller")
        if event.session_id is None and caller is not None:
            event.session_id = caller.session_id
    db.session.add(event)
    db.session.commit()


def connect() -> None:
    for signal in SIGNALS.values():
        signal.connect(_store)
