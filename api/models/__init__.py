"""SQLAlchemy models: users, their sessions and refresh tokens, link tokens, second factors,
records and who else may read them (collection policies, grants, groups), idempotency keys,
the change log and stream tickets.

One module per area (base.py: the shared column type and `utcnow`; accounts.py; records.py;
changes.py); every model, and the constants their constraints check, import from here.
"""

from api.constants import (
    CHANGE_KINDS,
    CREATE_POLICIES,
    GRANT_ACCESS,
    LINK_PURPOSES,
    READ_POLICIES,
    ROLES,
)
from api.models.accounts import (
    IdempotencyKey,
    LinkToken,
    MfaChallenge,
    MfaFactor,
    RecoveryCode,
    RefreshToken,
    SecurityEvent,
    Session,
    User,
)
from api.models.base import UTCDateTime, utcnow
from api.models.changes import Change, ChangeLogState, StreamTicket
from api.models.records import CollectionPolicy, Group, GroupMember, Record, RecordGrant

__all__ = [
    "CHANGE_KINDS",
    "CREATE_POLICIES",
    "Change",
    "ChangeLogState",
    "CollectionPolicy",
    "GRANT_ACCESS",
    "Group",
    "GroupMember",
    "IdempotencyKey",
    "LINK_PURPOSES",
    "LinkToken",
    "MfaChallenge",
    "MfaFactor",
    "READ_POLICIES",
    "ROLES",
    "Record",
    "RecordGrant",
    "RecoveryCode",
    "RefreshToken",
    "SecurityEvent",
    "Session",
    "StreamTicket",
    "UTCDateTime",
    "User",
    "utcnow",
]
