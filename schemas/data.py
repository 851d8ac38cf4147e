"""Records and collections: request bodies, responses and the list query."""

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates

from api.constants import SCOPES
from api.record_rules import COLLECTION_PATTERN, content_problem, is_filter, size_problem
from schemas.common import PageQuery, Timestamp

# A collection's name, as a path parameter documents it.
collection_name = fields.String(validate=validate.Regexp(COLLECTION_PATTERN))


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
    access = fields.String(
        metadata={
            "enum": ["owner", "write", "read"],
            "description": "What the caller may do: owner, write (PUT, PATCH) or read.",
        }
    )


class CollectionPublic(Schema):
    name = fields.String()
    count = fields.Integer()
    updated_at = Timestamp()


class Scope(fields.String):
    """`?scope=own|shared|all`: another value is a malformed parameter (400)."""

    default_error_messages = {"invalid": "The scope is one of own, shared, all."}

    def __init__(self, **kwargs) -> None:
        description = (
            "own: the caller's records; shared: records shared with the caller (directly or "
            "through a group); all: every record the caller may read."
        )
        metadata = {"enum": list(SCOPES), "description": description}
        super().__init__(load_default="own", metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if value not in SCOPES:
            raise self.make_error("invalid")
        return value


class OwnerQuery(Schema):
    """`?owner_id=` (admins only) on the reading routes."""

    owner_id = fields.UUID(load_default=None)


class CollectionsQuery(OwnerQuery):
    """`?owner_id=` and `?scope=` of the collections list."""

    scope = Scope()


class RecordListQuery(PageQuery):
    """`limit`, `cursor`, `sort`, `scope` and `owner_id`; filters are api.query's to parse."""

    sort = fields.String(load_default=None)
    scope = Scope()
    owner_id = fields.UUID(load_default=None)

    @pre_load
    def _leave_filters_to_the_query_language(self, data: dict, **_kwargs) -> dict:
        return {name: value for name, value in data.items() if not is_filter(name)}


record_write = RecordWrite()
record_patch = RecordPatch()
record_public = RecordPublic()
collection_public = CollectionPublic()
owner_query = OwnerQuery()
collections_query = CollectionsQuery()
record_list_query = RecordListQuery()
no_query = Schema()  # write routes take no query parameters
