"""Records: owner-scoped JSON objects in named collections.

The list language (filters, sorts, cursors) lives in api/query.py. Writes are conditional
UPDATE/DELETE statements checked by row count, so `If-Match` holds atomically in the database;
PATCH without `If-Match` compares-and-swaps on the version it read, and retries.
"""

import functools
import re
import uuid
from typing import NoReturn

from flask import Response, g, request
from flask_restful import Resource
from werkzeug.http import quote_etag

from api import query
from api.auth import authenticate
from api.errors import Problem
from api.extensions import db
from api.idempotency import idempotent
from api.models import Record, utcnow
from api.pagination import page
from api.web import JSON, MERGE_PATCH, V1, load_body, load_query
from schemas.data import (
    check_record_size,
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
PATCH_ATTEMPTS = 8  # compare-and-swap rounds before a PATCH without If-Match gives up (409)


def _guard(view):
    """Every data route: a valid collection name, and `?owner_id=` from admins on reads only."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        name = kwargs.get("collection")
        if name is not None and not COLLECTION_NAME.fullmatch(name):
            raise Problem(400, "A collection name must match ^[a-z][a-z0-9_-]{0,63}$.")
        if "owner_id" in request.args:
            if g.user.role != "admin":
                raise Problem(403, "Only admins may read another user's records (owner_id).")
            if request.method not in ("GET", "HEAD"):
                raise Problem(400, "owner_id applies to reads; writes act on your own records.")
        return view(*args, **kwargs)

    return wrapper


class Collections(Resource):
    method_decorators = [_guard, authenticate]

    def get(self):
        """The caller's collections, by name, with their record counts."""
        owner_id = load_query(owner_query)["owner_id"] or g.user.id
        rows = db.session.execute(
            db.select(
                Record.collection.label("name"),
                db.func.count().label("count"),
                db.func.max(Record.updated_at).label("updated_at"),
            )
            .where(Record.owner_id == owner_id)
            .group_by(Record.collection)
            .order_by(Record.collection)
        ).mappings()
        return {"items": collections_public.dump(rows.all()), "next_cursor": None}


class Collection(Resource):
    method_decorators = [_guard, authenticate]

    def get(self, collection):
        """A page of the caller's records in a collection: filters, sort, keyset cursor."""
        args = load_query(record_list_query)
        owner_id = args["owner_id"] or g.user.id
        listing = query.parse(request.args, sort=args["sort"])
        records, next_cursor = _page_of(owner_id, collection, listing, args)
        return page(records_public.dump(records), next_cursor)

    @idempotent
    def post(self, collection):
        """Create a record; `Idempotency-Key` makes retries safe."""
        load_query(no_query)
        data = load_body(record_write)["data"]
        now = utcnow()
        record = Record(
            owner_id=g.user.id, collection=collection, data=data, created_at=now, updated_at=now
        )
        db.session.add(record)
        db.session.flush()
        headers = {"Location": f"{V1}/data/{collection}/{record.id}", "ETag": _etag(record)}
        return _committed(record), 201, headers

    def delete(self, collection):
        """Delete every record the caller has in a collection."""
        load_query(no_query)
        db.session.execute(
            db.delete(Record).where(Record.owner_id == g.user.id, Record.collection == collection)
        )
        db.session.commit()
        return _no_content()


class RecordItem(Resource):
    method_decorators = [_guard, authenticate]

    def get(self, collection, record_id):
        """One record with its ETag; 304 when `If-None-Match` already has it."""
        owner_id = load_query(owner_query)["owner_id"] or g.user.id
        record = _find(owner_id, collection, _uuid(record_id))
        etag = _etag(record)
        if request.if_none_match.contains_weak(_tag(record)):
            return Response(status=304, headers={"ETag": etag})
        return record_public.dump(record), 200, {"ETag": etag}

    def put(self, collection, record_id):
        """Replace a record's data (no upsert), if `If-Match` allows."""
        load_query(no_query)
        record_id = _uuid(record_id)
        data = load_body(record_write)["data"]
        scope = (g.user.id, collection, record_id)
        record = _write(*scope, data, _if_match(record_id))
        if record is None:
            _precondition_failed(*scope)
        return _committed(record), 200, {"ETag": _etag(record)}

    def patch(self, collection, record_id):
        """Apply a JSON Merge Patch to a record's data, if `If-Match` allows."""
        load_query(no_query)
        record_id = _uuid(record_id)
        patch = load_body(record_patch, media_types=(JSON, MERGE_PATCH))["data"]
        record = _patch(g.user.id, collection, record_id, patch, _if_match(record_id))
        return _committed(record), 200, {"ETag": _etag(record)}

    def delete(self, collection, record_id):
        """Delete a record, if `If-Match` allows."""
        load_query(no_query)
        record_id = _uuid(record_id)
        scope = (g.user.id, collection, record_id)
        if not _delete(*scope, _if_match(record_id)):
            _precondition_failed(*scope)
        db.session.commit()
        return _no_content()


# --- reading ---------------------------------------------------------------------------------


def _page_of(owner_id, collection, listing, args) -> tuple[list[Record], str | None]:
    """One query: limit + 1 rows tell whether there is a next page."""
    scope = (str(owner_id), collection)
    position = None
    if args["cursor"]:
        position = query.decode_cursor(args["cursor"], listing, scope)
    compiler = query.Compiler(db.session.get_bind().dialect.name)
    stmt = db.select(Record).where(Record.owner_id == owner_id, Record.collection == collection)
    stmt = compiler.apply(stmt, listing, position).limit(args["limit"] + 1)
    records = db.session.scalars(stmt).all()
    if len(records) <= args["limit"]:
        return records, None
    records = records[: args["limit"]]
    return records, query.encode_cursor(listing, scope, records[-1])


def _identifies(owner_id, collection, record_id) -> tuple:
    return (Record.id == record_id, Record.owner_id == owner_id, Record.collection == collection)


def _find(owner_id, collection, record_id) -> Record:
    record = db.session.scalars(
        db.select(Record).where(*_identifies(owner_id, collection, record_id))
    ).one_or_none()
    if record is None:
        raise Problem(404, "No such record.")
    return record


def _uuid(record_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(record_id)
    except ValueError:
        raise Problem(404, "No such record.") from None


# --- conditional writes ----------------------------------------------------------------------


def _tag(record: Record) -> str:
    return f"{record.id}.{record.version}"


def _etag(record: Record) -> str:
    return quote_etag(_tag(record))


def _if_match(record_id: uuid.UUID) -> frozenset[int] | None:
    """The versions `If-Match` accepts; None when it is absent or `*` (any version).

    If-Match compares strongly (RFC 9110): weak tags and other records' tags match nothing.
    """
    if "If-Match" not in request.headers or request.if_match.star_tag:
        return None
    versions = set()
    for tag in request.if_match.as_set():
        match = _ETAG.fullmatch(tag) if tag else None  # `If-Match: ""` parses to None
        if match and match["id"] == str(record_id):
            versions.add(int(match["version"]))
    return frozenset(versions)


def _write(owner_id, collection, record_id, data, versions) -> Record | None:
    """Set `data` and bump the version in one UPDATE, only from one of `versions` when given;
    None when no row matched (missing, or changed since)."""
    stmt = (
        db.update(Record)
        .where(*_identifies(owner_id, collection, record_id))
        .values(data=data, version=Record.version + 1, updated_at=utcnow())
        .returning(Record)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    if versions is not None:
        stmt = stmt.where(Record.version.in_(sorted(versions)))
    return db.session.scalars(stmt).one_or_none()


def _delete(owner_id, collection, record_id, versions) -> bool:
    """Delete in one statement, only at one of `versions` when given; False if no row matched."""
    stmt = db.delete(Record).where(*_identifies(owner_id, collection, record_id))
    if versions is not None:
        stmt = stmt.where(Record.version.in_(sorted(versions)))
    return db.session.execute(stmt.execution_options(synchronize_session=False)).rowcount == 1


def _precondition_failed(owner_id, collection, record_id) -> NoReturn:
    """After a conditional write matched no row: 404 if the record is gone, else 412."""
    exists = db.session.scalar(
        db.select(Record.id).where(*_identifies(owner_id, collection, record_id))
    )
    if exists is None:
        raise Problem(404, "No such record.")
    raise Problem(412, "The record has changed: If-Match does not match its current ETag.")


def _patch(owner_id, collection, record_id, patch, versions) -> Record:
    """Merge-patch the version read, compare-and-swap; retry when another write came first."""
    scope = (owner_id, collection, record_id)
    for _ in range(PATCH_ATTEMPTS):
        current = db.session.execute(
            db.select(Record.data, Record.version).where(*_identifies(*scope))
        ).one_or_none()
        if current is None:
            raise Problem(404, "No such record.")
        if versions is not None and current.version not in versions:
            raise Problem(412, "The record has changed: If-Match does not match its current ETag.")
        data = merge_patch(current.data, patch)
        check_record_size(data)
        record = _write(*scope, data, {current.version})
        if record is not None:
            return record
        db.session.rollback()
    raise Problem(409, "The record is being changed by others; retry the request.")


def merge_patch(target: object, patch: object) -> object:
    """RFC 7396: null removes a key, objects merge recursively, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def _no_content() -> Response:
    response = Response(status=204)
    del response.headers["Content-Type"]  # no body, so no media type
    return response


def _committed(record: Record) -> dict:
    """The record as sent, dumped before the commit expires it (no reload query)."""
    body = record_public.dump(record)
    db.session.commit()
    return body
