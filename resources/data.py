"""Records: JSON objects in named collections, their owners' and whoever they are shared with,
over HTTP.

The list language (filters, sorts, cursors) is api/query's, specified in
docs/query-language.md; the statements are api/records.py's. This module maps them to routes,
ETags and status codes.
"""

import functools
import re
import uuid

from flask import Response, g, request
from flask_restful import Resource
from werkzeug.http import quote_etag

from api import query, record_creation, records
from api.errors import Forbidden, InvalidRequest, NotFound
from api.http.auth import authenticate, authenticate_or_anonymous
from api.http.idempotency import idempotent
from api.http.operation import (
    arguments,
    body,
    conditional,
    operation,
    other_responses,
    paginated,
    path_parameter,
    response,
)
from api.http.queries import per_query_string, query_names
from api.http.web import JSON, MERGE_PATCH, V1
from api.record_rules import COLLECTION_NAME, COLLECTION_PATTERN
from schemas.data import (
    collection_name,
    collection_public,
    collections_query,
    no_query,
    owner_query,
    record_list_query,
    record_patch,
    record_public,
    record_write,
)

_ETAG = re.compile(r"(?P<id>[0-9a-f-]{36})\.(?P<version>[0-9]{1,18})")
# RFC 9110 §8.8.3 and §13.1.1: `*`, or a comma-separated list of (weak or strong) entity-tags.
_ENTITY_TAG = r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"'
_IF_MATCH = re.compile(rf"\*|{_ENTITY_TAG}(?:[ \t]*,[ \t]*{_ENTITY_TAG})*")
_NO_RECORD = {404: "No such record, or one the caller may not read."}
_READ_ONLY = {403: "The caller may read the record but not change it."}
_NOT_ADMIN = {403: "owner_id from a caller who is no admin."}


def filters_parameter() -> dict:
    """The filters as an OpenAPI query parameter, one query parameter each (no schema field can
    name them): which fields and operators, from the parser's own constants. Everything else
    about them is docs/query-language.md's."""
    segment = query.SEGMENT.pattern
    path = rf"data\.{segment}(\.{segment}){{0,{query.MAX_DEPTH - 1}}}"
    fields = "|".join((path, *query.TIMESTAMPS))
    operators = "|".join(query.OPERATORS)
    return {
        "in": "query",
        "name": "filters",
        "description": (
            "Filters, one query parameter each, e.g. `data.status=eq.open`: the list language, "
            "specified in docs/query-language.md."
        ),
        "required": False,
        "style": "form",
        "explode": True,
        "schema": {
            "type": "object",
            "maxProperties": query.MAX_FILTERS,
            "propertyNames": {"pattern": f"^({fields})$"},
            "additionalProperties": {"type": "string", "pattern": rf"^({operators})\..*$"},
        },
    }


FILTERS_PARAMETER = filters_parameter()
_RECORD = {"collection": "$request.path.collection", "record_id": "$response.body#/id"}
_RECORD_LINKS = dict.fromkeys(
    ("getRecord", "replaceRecord", "patchRecord", "deleteRecord", "listRecordGrants"), _RECORD
)


def data_route(view):
    """Every data route: a collection name that matches COLLECTION_PATTERN (else 400), and
    `?owner_id=` from admins (else 403, whatever its value) on reads only (else 400)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        name = kwargs.get("collection")
        if name is not None and not COLLECTION_NAME.fullmatch(name):
            raise InvalidRequest(f"A collection name must match {COLLECTION_PATTERN}.")
        if "owner_id" in query_names():
            if g.caller is None or g.caller.role != "admin":
                raise Forbidden("Only admins may read another user's records (owner_id).")
            if request.method not in ("GET", "HEAD"):
                raise InvalidRequest("owner_id applies to reads; writes act on your own records.")
        return view(*args, **kwargs)

    return path_parameter("collection", collection_name)(wrapper)


class Collections(Resource):
    @authenticate
    @data_route
    @operation("listCollections")
    @arguments(collections_query)
    @paginated(collection_public)
    @other_responses(_NOT_ADMIN)
    def get(self, query):
        """Collections with the count of the records the caller may read in `scope`."""
        found = records.collections(g.caller, scope=query["scope"], owner_id=query["owner_id"])
        return found, None


@per_query_string
def _listing(sort: str | None) -> query.Listing:
    """The request's filters and sort (a Listing is immutable)."""
    return query.parse(request.args, sort=sort)


class Collection(Resource):
    @authenticate_or_anonymous
    @data_route
    @operation("listRecords")
    @arguments(record_list_query, parameters=(FILTERS_PARAMETER,))
    @paginated(record_public)
    @other_responses(_NOT_ADMIN)
    def get(self, args, collection):
        """List the records the caller may read in `scope`: filters, sort, keyset pages."""
        listing = _listing(args["sort"])
        return records.page_of(
            g.caller,
            collection,
            listing,
            scope=args["scope"],
            owner_id=args["owner_id"],
            limit=args["limit"],
            cursor=args["cursor"],
        )

    @authenticate
    @data_route
    @operation("createRecord", links=_RECORD_LINKS)
    @idempotent
    @arguments(no_query)
    @body(record_write)
    @response(record_public, 201, headers=("Location", "ETag"))
    @other_responses({403: "owner_id, or a collection that only admins create in."})
    def post(self, new, collection):
        """Create a record; `Idempotency-Key` makes retries safe."""
        record = record_creation.create(g.caller, collection, new["data"])
        return record, {"Location": f"{V1}/data/{collection}/{record['id']}", "ETag": _etag(record)}

    @authenticate
    @data_route
    @operation("deleteCollection")
    @arguments(no_query)
    @response(None, 204)
    @other_responses(_NOT_ADMIN)
    def delete(self, collection):
        """Delete all own records of the collection."""
        records.delete_collection(g.caller.id, collection)


class RecordItem(Resource):
    @authenticate_or_anonymous
    @data_route
    @operation("getRecord")
    @arguments(owner_query)
    @conditional("If-None-Match")
    @response(record_public, headers=("ETag",))
    @other_responses({**_NOT_ADMIN, **_NO_RECORD})
    def get(self, query, collection, record_id):
        """One record the caller may read, with its ETag; 304 when `If-None-Match` has it."""
        record = records.find(g.caller, collection, record_id, query["owner_id"])
        etag = _etag(record)
        if request.if_none_match.contains_weak(_tag(record)):
            return Response(status=304, headers={"ETag": etag})
        return record, {"ETag": etag}

    @authenticate
    @data_route
    @operation("replaceRecord")
    @arguments(no_query)
    @conditional("If-Match")
    @body(record_write)
    @response(record_public, headers=("ETag",))
    @other_responses({409: "Others kept changing the record; retry.", **_READ_ONLY, **_NO_RECORD})
    def put(self, new, collection, record_id):
        """Replace a record's data (no upsert), if `If-Match` allows."""
        record_id = record_uuid(record_id)
        versions = _if_match(record_id)
        record = records.replace(g.caller, collection, record_id, new["data"], versions)
        return record, {"ETag": _etag(record)}

    @authenticate
    @data_route
    @operation("patchRecord")
    @arguments(no_query)
    @conditional("If-Match")
    @body(record_patch, media_types=(JSON, MERGE_PATCH))
    @response(record_public, headers=("ETag",))
    @other_responses({409: "Others kept changing the record; retry.", **_READ_ONLY, **_NO_RECORD})
    def patch(self, changes, collection, record_id):
        """Apply a JSON Merge Patch (RFC 7396) to a record's data, if `If-Match` allows."""
        record_id = record_uuid(record_id)
        versions = _if_match(record_id)
        record = records.patch(g.caller, collection, record_id, changes["data"], versions)
        return record, {"ETag": _etag(record)}

    @authenticate
    @data_route
    @operation("deleteRecord")
    @arguments(no_query)
    @conditional("If-Match")
    @response(None, 204)
    @other_responses({403: "Only the owner or an admin deletes a record.", **_NO_RECORD})
    def delete(self, collection, record_id):
        """Delete a record, if `If-Match` allows."""
        record_id = record_uuid(record_id)
        records.delete(g.caller, collection, record_id, _if_match(record_id))


def record_uuid(record_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(record_id)
    except ValueError:
        raise NotFound("No such record.") from None


def _tag(record) -> str:
    return f"{record['id']}.{record['version']}"


def _etag(record) -> str:
    return quote_etag(_tag(record))


def _if_match(record_id: uuid.UUID) -> frozenset[int] | None:
    """The versions `If-Match` accepts; None when it is absent or `*` (any version).

    If-Match compares strongly (RFC 9110): weak tags and other records' tags match nothing.
    A header that is no list of entity-tags (unquoted, empty, garbage) is 400: a client bug
    that must not read as "the record has changed".
    """
    header = request.headers.get("If-Match")
    if header is None:
        return None
    if not _IF_MATCH.fullmatch(header.strip()):
        raise InvalidRequest('If-Match must be "*" or a list of quoted ETags, e.g. If-Match: "…".')
    if request.if_match.star_tag:
        return None
    versions = set()
    for tag in request.if_match.as_set():
        match = _ETAG.fullmatch(tag) if tag else None  # `If-Match: ""` parses to None
        if match and match["id"] == str(record_id):
            versions.add(int(match["version"]))
    return frozenset(versions)
