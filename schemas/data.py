"""Records and collections: request bodies, responses and the list query."""

import orjson
from flask import current_app
from marshmallow import Schema, ValidationError, fields, pre_load, validates

from api import query
from schemas.common import PageQuery, Timestamp

MAX_NESTING = 64


def content_problem(value: object) -> str | None:
    """Why a JSON value cannot be stored identically on SQLite and PostgreSQL, or None.

    PostgreSQL's JSONB refuses U+0000 in strings; numbers beyond 64 bits are exact on one
    database and rounded on the other; deep nesting overflows the JSON encoders.
    """
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            return f"Must not nest objects and arrays more than {MAX_NESTING} levels deep."
        if isinstance(node, dict):
            if any("\x00" in key for key in node):
                return "Keys must not contain U+0000."
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
        elif isinstance(node, str) and "\x00" in node:
            return "Strings must not contain U+0000."
        elif isinstance(node, int | float) and not isinstance(node, bool):
            if not query.in_int64(node):
                return "Numbers must lie between -2^63 and 2^63."
    return None


def size_problem(data: dict) -> str | None:
    """Why `data` is too large (its compact JSON is over COFFER_MAX_RECORD_BYTES), or None."""
    limit = current_app.config["COFFER_MAX_RECORD_BYTES"]
    if len(orjson.dumps(data)) > limit:
        return f"Must be at most {limit} bytes as compact JSON."
    return None


def check_record_size(data: dict) -> None:
    """422 on `data` when it is too large (a merge patch's result, say)."""
    problem = size_problem(data)
    if problem:
        raise ValidationError({"data": [problem]})


class RecordWrite(Schema):
    """Body of POST and PUT: the record's whole `data`, a JSON object."""

    data = fields.Dict(required=True, error_messages={"invalid": "Must be a JSON object."})

    @validates("data")
    def _storable(self, value: dict, **_kwargs) -> None:
        problem = content_problem(value) or size_problem(value)
        if problem:
            raise ValidationError(problem)


class RecordPatch(Schema):
    """Body of PATCH: a JSON Merge Patch (RFC 7396) to apply to `data`."""

    data = fields.Dict(
        required=True, error_messages={"invalid": "Must be a JSON object (a JSON Merge Patch)."}
    )

    @validates("data")
    def _storable(self, value: dict, **_kwargs) -> None:
        problem = content_problem(value)
        if problem:
            raise ValidationError(problem)


class RecordPublic(Schema):
    id = fields.UUID()
    collection = fields.String()
    owner_id = fields.UUID()
    data = fields.Dict()
    version = fields.Integer()
    created_at = Timestamp()
    updated_at = Timestamp()


class CollectionPublic(Schema):
    name = fields.String()
    count = fields.Integer()
    updated_at = Timestamp()


class OwnerQuery(Schema):
    """`?owner_id=` (admins only) on the reading routes."""

    owner_id = fields.UUID(load_default=None)


class RecordListQuery(PageQuery):
    """`limit`, `cursor`, `sort` and `owner_id`; filters are api.query's to parse."""

    sort = fields.String(load_default=None)
    owner_id = fields.UUID(load_default=None)

    @pre_load
    def _leave_filters_to_the_query_language(self, data: dict, **_kwargs) -> dict:
        return {name: value for name, value in data.items() if not query.is_filter(name)}


record_write = RecordWrite()
record_patch = RecordPatch()
record_public = RecordPublic()
records_public = RecordPublic(many=True)
collections_public = CollectionPublic(many=True)
owner_query = OwnerQuery()
record_list_query = RecordListQuery()
no_query = Schema()  # write routes take no query parameters
