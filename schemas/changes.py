"""The change feed: stream queries, the data of a change event, stream tickets."""

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates

from api.constants import SCOPES
from api.record_rules import COLLECTION_NAME, is_filter
from schemas.common import Timestamp

MAX_COLLECTIONS = 20


class Scope(fields.String):
    """`own`, `shared` or `all`; anything else is malformed (400), as on the record list."""

    default_error_messages = {"invalid": f"Must be one of: {', '.join(SCOPES)}."}

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        if value not in SCOPES:
            raise self.make_error("invalid")
        return value


class StreamQuery(Schema):
    """What every stream takes: the scope, where to resume, and a browser's ticket."""

    scope = Scope(load_default="own", metadata={"enum": list(SCOPES)})
    last_event_id = fields.String(
        load_default=None,
        metadata={"description": "Resume after this event (when no Last-Event-ID header)."},
    )
    ticket = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "A stream ticket (POST /api/v1/stream-tickets): single-use."},
    )


class CollectionChangesQuery(StreamQuery):
    """A collection's stream; filters are api.query's to parse (sort, limit, cursor: 400)."""

    @pre_load
    def _leave_filters_to_the_query_language(self, data: dict, **_kwargs) -> dict:
        return {name: value for name, value in data.items() if not is_filter(name)}


class CollectionList(fields.String):
    """Comma-separated collection names, each matching COLLECTION_PATTERN (else 400)."""

    # Not the pattern itself in the message: marshmallow would read its braces as fields.

    default_error_messages = {
        "invalid": "Comma-separated collection names: a lowercase letter, then up to 63 of "
        "a-z 0-9 _ - each."
    }

    def _deserialize(self, value, attr, data, **kwargs) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(str(value).split(",")))
        if not all(COLLECTION_NAME.fullmatch(name) for name in names):
            raise self.make_error("invalid")
        return names


class ChangesQuery(StreamQuery):
    collections = CollectionList(
        required=True,
        metadata={"description": f"Comma-separated collection names, at most {MAX_COLLECTIONS}."},
    )

    @validates("collections")
    def _at_most(self, value: tuple, **_kwargs) -> None:
        if len(value) > MAX_COLLECTIONS:
            raise ValidationError(f"At most {MAX_COLLECTIONS} collections.")


class ChangedRecord(Schema):
    """The record after the change, with the caller's access; only `id` when deleted."""

    id = fields.UUID(required=True)
    collection = fields.String()
    owner_id = fields.UUID()
    data = fields.Dict()
    version = fields.Integer()
    created_at = Timestamp()
    updated_at = Timestamp()
    access = fields.String(validate=validate.OneOf(("owner", "write", "read")))


class ChangeEvent(Schema):
    """The `data:` of a created, updated or deleted event (`{}` for a reset)."""

    collection = fields.String(required=True)
    record = fields.Nested(ChangedRecord, required=True)
    matches = fields.Boolean(
        required=True,
        metadata={"description": "Whether the record matches the stream's filters after it."},
    )


class StreamTicketPublic(Schema):
    ticket = fields.String(required=True)
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds."})


collection_changes_query = CollectionChangesQuery()
changes_query = ChangesQuery()
change_event = ChangeEvent()
stream_ticket_public = StreamTicketPublic()
