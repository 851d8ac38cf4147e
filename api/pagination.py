"""Opaque, signed cursors and the page envelope shared by every list."""

import base64
import hashlib
import hmac
import uuid
from urllib.parse import urlencode

import orjson
from flask import Flask, current_app, request

from api.errors import Problem
from api.extensions import db

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_MAC_BYTES = 16


def encode_cursor(payload: object) -> str:
    """Sign `payload` (any JSON value) into an opaque, URL-safe cursor."""
    body = orjson.dumps(payload)
    mac = hmac.new(current_app.extensions["coffer_cursor_key"], body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:_MAC_BYTES] + body).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> object:
    """The payload of a cursor made by `encode_cursor`; 400 when it was altered or forged."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (ValueError, TypeError):
        raise Problem(400, "The cursor is malformed.") from None
    mac, body = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
    expected = hmac.new(current_app.extensions["coffer_cursor_key"], body, hashlib.sha256).digest()
    if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, expected[:_MAC_BYTES]):
        raise Problem(400, "The cursor is invalid: use next_cursor from the previous page.")
    return orjson.loads(body)


def newest_first(stmt, id_column, *, kind: str, limit: int, cursor: str | None):
    """One keyset page of `stmt`, newest first by a time-ordered (UUIDv7) id column."""
    if cursor:
        payload = decode_cursor(cursor)
        if not isinstance(payload, dict) or payload.get("k") != kind:
            raise Problem(400, "The cursor belongs to another list.")
        try:
            stmt = stmt.where(id_column < uuid.UUID(str(payload.get("before"))))
        except ValueError:
            raise Problem(400, "The cursor is malformed.") from None
    rows = db.session.execute(stmt.order_by(id_column.desc()).limit(limit + 1)).scalars().all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor({"k": kind, "before": str(rows[-1].id)})
    return rows, next_cursor


def page(items: list, next_cursor: str | None) -> tuple[dict, int, dict]:
    """The list envelope, with a `Link: rel="next"` header when there is a next page."""
    headers = {}
    if next_cursor:
        query = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"]
        query.append(("cursor", next_cursor))
        headers["Link"] = f'<{request.base_url}?{urlencode(query)}>; rel="next"'
    return {"items": items, "next_cursor": next_cursor}, 200, headers


def init_app(app: Flask) -> None:
    app.extensions["coffer_cursor_key"] = hmac.new(
        app.config["COFFER_SECRET_KEY"].encode(), b"coffer cursor v1", hashlib.sha256
    ).digest()
