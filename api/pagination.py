"""Opaque, signed cursors and keyset pages, shared by every list."""

import hashlib
import hmac
import uuid

import orjson
from flask import Flask, current_app

from api.errors import InvalidRequest
from api.extensions import db
from api.keys import b64url_decode, b64url_encode, derive_key

_MAC_BYTES = 16
_PAGE_ARGS = frozenset({"limit", "cursor"})


def encode_cursor(payload: object) -> str:
    """Sign `payload` (any JSON value) into an opaque, URL-safe cursor."""
    body = orjson.dumps(payload)
    mac = hmac.new(current_app.extensions["coffer_cursor_key"], body, hashlib.sha256).digest()
    return b64url_encode(mac[:_MAC_BYTES] + body)


def decode_cursor(cursor: str) -> object:
    """The payload of a cursor made by `encode_cursor`; 400 when it was altered or forged."""
    try:
        raw = b64url_decode(cursor)
    except (ValueError, TypeError):
        raise InvalidRequest("The cursor is malformed.") from None
    mac, body = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
    expected = hmac.new(current_app.extensions["coffer_cursor_key"], body, hashlib.sha256).digest()
    if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, expected[:_MAC_BYTES]):
        raise InvalidRequest("The cursor is invalid: use next_cursor from the previous page.")
    return orjson.loads(body)


def list_binding(kind: str, *parts: object) -> str:
    """What a list's cursor is bound to: the list, its reader and its filters, as a digest.

    A cursor replayed by another caller or with other filters is 400, never a page of a list
    that the cursor was not made for. A dict part is a page query: its own `limit` and
    `cursor` are left out, so that a client may change the page size between pages.
    """
    parts = tuple(
        {k: v for k, v in part.items() if k not in _PAGE_ARGS} if isinstance(part, dict) else part
        for part in parts
    )
    encoded = orjson.dumps([kind, *parts], default=str, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(encoded).digest()
    return b64url_encode(digest[:12])


def newest_first(stmt, id_column, *, binding: str, limit: int, cursor: str | None):
    """One keyset page of `stmt`, newest first by a time-ordered (UUIDv7) id column;
    `binding` (from `list_binding`) ties its cursors to this list, reader and filters."""
    if cursor:
        payload = decode_cursor(cursor)
        if not isinstance(payload, dict) or payload.get("k") != binding:
            raise InvalidRequest("The cursor belongs to another list, reader or filter.")
        try:
            stmt = stmt.where(id_column < uuid.UUID(str(payload.get("before"))))
        except ValueError:
            raise InvalidRequest("The cursor is malformed.") from None
    rows = db.session.execute(stmt.order_by(id_column.desc()).limit(limit + 1)).scalars().all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor({"k": binding, "before": str(rows[-1].id)})
    return rows, next_cursor


def init_app(app: Flask) -> None:
    app.extensions["coffer_cursor_key"] = derive_key(
        app.config["COFFER_SECRET_KEY"], "coffer cursor v1"
    )
