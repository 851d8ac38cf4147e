"""Fields and schemas shared by every area: timestamps, strict booleans, cursors, pagination."""

from datetime import UTC, datetime

from marshmallow import Schema, ValidationError, fields, validate

from api.constants import DEFAULT_LIMIT, MAX_LIMIT


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z` and milliseconds: 2026-11-21T10:00:00.123Z."""
    if value.tzinfo is not UTC:  # what the database returns is UTC already
        value = value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"


class Timestamp(fields.DateTime):
    """RFC 3339 in UTC with a `Z`; a time zone is required on input."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else format_timestamp(value)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("Not a valid RFC 3339 timestamp.")
        try:
            parsed = datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError:
            raise ValidationError("Not a valid RFC 3339 timestamp.") from None
        if parsed.tzinfo is None:
            raise ValidationError("The timestamp needs a time zone (Z or an offset).")
        return parsed.astimezone(UTC)


class StrictBoolean(fields.Boolean):
    """JSON true/false only: "yes" or 1 in a body is a mistake, not a boolean."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("Not a valid boolean.")
        return value


class QueryBoolean(fields.Boolean):
    truthy = {"true", "1"}
    falsy = {"false", "0"}


class Cursor(fields.String):
    """An opaque cursor from `next_cursor`: empty or over-long is malformed (400), not out of
    range, since no client that follows `next_cursor` sends one."""

    default_error_messages = {"invalid": "The cursor is malformed."}
    max_length = 2048

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if not 0 < len(value) <= self.max_length:
            raise self.make_error("invalid")
        return value


class PageQuery(Schema):
    """`?limit=` (1-100, default 20) and `?cursor=` of every list."""

    limit = fields.Integer(
        load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT), strict=False
    )
    cursor = Cursor(load_default=None, metadata={"minLength": 1, "maxLength": Cursor.max_length})


page_query = PageQuery()
