"""Records: owner-scoped JSON objects in named collections, over HTTP.

The list language (filters, sorts, cursors) lives in api/query.py, the statements in
api/records.py; this module maps them to routes, ETags and status codes.
"""

import functools
import re
import uuid

from flask import Response, g, request
from flask_restful import Resource
from werkzeug.http import quote_etag

from api import query, records
from api.auth import authenticate
from api.errors import Problem
from api.idempotency import idempotent
from api.pagination import page
from api.web import JSON, MERGE_PATCH, V1, load_body, load_query
from schemas.data import (
    collections_public,
    no_query,
    owner_query,
    record_list_query,
    record_patch,
    record_public,
    record_write,
    records_public,
)

COLLECTION_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_ETAG = re.compile(r"(?P<id>[0-9a-f-]{36})\.(?P<version>[0-9]{1,18})")
# RFC 9110 §8.8.3 and §13.1.1: `*`, or a comma-separated list of (weak or strong) entity-tags.
_ENTITY_TAG = r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"'
_IF_MATCH = re.compile(rf"\*|{_ENTITY_TAG}(?:[ \t]*,[ \t]*{_ENTITY_TAG})*")


def _guard(view):
    """Every data route: a valid collection name, and `?owner_id=` from admins on reads only."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        name = kwargs.get("collection")
        if name is not None and not COLLECTION_NAME.fullmatch(name):
            raise Problem(400, "A collection name must match ^[a-z][a-z0-9_-]{0,63}$.")
        if "owner_id" in request.args:
            if g.caller.role != "admin":
                raise Problem(403, "Only admins may read another user's records (owner_id).")
            if request.method not in ("GET", "HEAD"):
                raise Problem(400, "owner_id applies to reads; writes act on your own records.")
        return view(*args, **kwargs)

    return wrapper


class Collections(Resource):
    method_decorators = [_guard, authenticate]

    def get(self):
        """The caller's collections, by name, with their record counts."""
        owner_id = load_query(owner_query)["owner_id"] or g.caller.id
        return {
            "items": collections_public.dump(records.collections(owner_id)),
            "next_cursor": None,
        }


class Collection(Resource):
    method_decorators = [_guard, authenticate]

    def get(self, collection):
        """A page of the caller's records in a collection: filters, sort, keyset cursor."""
        args = load_query(record_list_query)
        owner_id = args["owner_id"] or g.caller.id
        listing = query.parse(request.args, sort=args["sort"])
        found, next_cursor = records.page_of(
            owner_id, collection, listing, limit=args["limit"], cursor=args["cursor"]
        )
        return page(records_public.dump(found), next_cursor)

    @idempotent
    def post(self, collection):
        """Create a record; `Idempotency-Key` makes retries safe."""
        load_query(no_query)
        data = load_body(record_write)["data"]
        record = records.create(g.caller.id, collection, data)
        headers = {"Location": f"{V1}/data/{collection}/{record['id']}", "ETag": _etag(record)}
        return record_public.dump(record), 201, headers

    def delete(self, collection):
        """Delete every record the caller has in a collection."""
        load_query(no_query)
        records.delete_collection(g.caller.id, collection)
        return _no_content()


class RecordItem(Resource):
    method_decorators = [_guard, authenticate]

    def get(self, collection, record_id):
        """One record with its ETag; 304 when `If-None-Match` already has it."""
        owner_id = load_query(owner_query)["owner_id"] or g.caller.id
        record = records.find(owner_id, collection, _uuid(record_id))
        etag = _etag(record)
        if request.if_none_match.contains_weak(_tag(record)):
            return Response(status=304, headers={"ETag": etag})
        return record_public.dump(record), 200, {"ETag": etag}

    def put(self, collection, record_id):
        """Replace a record's data (no upsert), if `If-Match` allows."""
        load_query(no_query)
        record_id = _uuid(record_id)
        data = load_body(record_write)["data"]
        record = records.replace(g.caller.id, collection, record_id, data, _if_match(record_id))
        return record_public.dump(record), 200, {"ETag": _etag(record)}

    def patch(self, collection, record_id):
        """Apply a JSON Merge Patch to a record's data, if `If-Match` allows."""
        load_query(no_query)
        record_id = _uuid(record_id)
        changes = load_body(record_patch, media_types=(JSON, MERGE_PATCH))["data"]
        record = records.patch(g.caller.id, collection, record_id, changes, _if_match(record_id))
        return record_public.dump(record), 200, {"ETag": _etag(record)}

    def delete(self, collection, record_id):
        """Delete a record, if `If-Match` allows."""
        load_query(no_query)
        record_id = _uuid(record_id)
        records.delete(g.caller.id, collection, record_id, _if_match(record_id))
        return _no_content()


def _uuid(record_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(record_id)
    except ValueError:
        raise Problem(404, "No such record.") from None


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
        raise Problem(400, 'If-Match must be "*" or a list of quoted ETags, e.g. If-Match: "…".')
    if request.if_match.star_tag:
        return None
    versions = set()
    for tag in request.if_match.as_set():
        match = _ETAG.fullmatch(tag) if tag else None  # `If-Match: ""` parses to None
        if match and match["id"] == str(record_id):
            versions.add(int(match["version"]))
    return frozenset(versions)


def _no_content() -> Response:
    response = Response(status=204)
    del response.headers["Content-Type"]  # no body, so no media type
    return response
