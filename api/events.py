"""Security events: the account operations send blinker signals, one subscriber stores them.

Signals are sent after the operation's own commit, so a failed operation records nothing (a
failed log-in is itself the event). Events never carry secrets or tokens.
"""

import uuid
from collections.abc import Callable

from blinker import Namespace

from api.constants import EVENT_TYPES
from api.errors import NotFound
from api.extensions import db
from api.models import SecurityEvent, User
from api.pagination import list_binding, newest_first

signals = Namespace()

# Every event type there is (api/constants.py, in the order of API.md's list). A test reads
# every emit() in the code: each names one of these, and each of these is emitted somewhere.
TYPES = EVENT_TYPES
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


def _no_context() -> dict:
    return {}


# Where an event happened (ip, user_agent, session_id): the HTTP layer tells, per request.
_context: Callable[[], dict] = _no_context


def _store(event_type: str, *, user_id, session_id, details) -> None:
    where = _context()
    event = SecurityEvent(
        type=event_type,
        user_id=user_id,
        session_id=session_id or where.get("session_id"),
        ip=where.get("ip"),
        user_agent=where.get("user_agent"),
        details=details,
    )
    db.session.add(event)
    db.session.commit()


def connect(*, context: Callable[[], dict] = _no_context) -> None:
    """Store every event; `context()` says where it happened (empty outside a request)."""
    global _context
    _context = context
    for signal in SIGNALS.values():
        signal.connect(_store)


def events_page(
    user_id: uuid.UUID, *, limit: int, cursor: str | None, of_any_user: bool = False
) -> tuple[list[SecurityEvent], str | None]:
    """A user's security events, newest first. `of_any_user` (an admin reading): the events
    outlive their user, and only an id that never had a user nor an event is NotFound."""
    if of_any_user and not _known_user(user_id):
        raise NotFound("No such user.")
    return newest_first(
        db.select(SecurityEvent).where(SecurityEvent.user_id == user_id),
        SecurityEvent.id,
        binding=list_binding("events", user_id),
        limit=limit,
        cursor=cursor,
    )


def _known_user(user_id: uuid.UUID) -> bool:
    if db.session.get(User, user_id) is not None:
        return True
    first = db.select(SecurityEvent.id).where(SecurityEvent.user_id == user_id).limit(1)
    return db.session.execute(first).first() is not None
