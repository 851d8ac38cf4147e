"""Records and collections: request bodies, responses and the list query."""

from marshmallow import Schema, ValidationError, fields, pre_load, validates

from api import query
from api.record_rules import content_problem, size_problem
from schemas.common import PageQuery, Timestamp


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
collection_public = CollectionPublic()
owner_query = OwnerQuery()
record_list_query = RecordListQuery()
no_query = Schema()  # write routes take no query parameters
