"""Cursors: the sort position of a page's last record, signed and bound to its query."""

import hashlib
import uuid
from collections.abc import Mapping
from datetime import datetime

import orjson

from api import pagination
from api.query.dialects import MISSING, TYPED, lookup, rank_of
from api.query.parsing import TIMESTAMPS, Listing, SortKey, bad_parameter, path_of


def position(listing: Listing, record: Mapping) -> list:
    """The sort values of `record` (a row of `records`, by column), as a cursor carries them."""
    values: list = []
    for key in listing.sort:
        if key.field == "id":
            values.append(str(record["id"]))
        elif key.field in TIMESTAMPS:
            values.append(record[key.field].isoformat())
        else:
            value = lookup(record["data"], path_of(key.field, "sort"))
            rank = rank_of(value)
            values.append([rank, value if rank in TYPED else None])
    return values


def _fingerprint(listing: Listing, scope: tuple[str, ...]) -> str:
    filters = sorted(orjson.dumps([f.field, f.op, list(f.values)]) for f in listing.filters)
    sort = [[key.field, key.descending] for key in listing.sort]
    blob = orjson.dumps([list(scope), [f.decode() for f in filters], sort])
    return hashlib.sha256(blob).hexdigest()[:24]


def encode_cursor(listing: Listing, scope: tuple[str, ...], record: Mapping) -> str:
    """A signed cursor for the page after `record`, valid only for this listing and scope."""
    payload = {"q": _fingerprint(listing, scope), "p": position(listing, record)}
    return pagination.encode_cursor(payload)


def decode_cursor(cursor: str, listing: Listing, scope: tuple[str, ...]) -> list:
    """The position a cursor carries; 400 when it was made for another query or is damaged."""
    payload = pagination.decode_cursor(cursor)
    if not isinstance(payload, dict) or payload.get("q") != _fingerprint(listing, scope):
        raise bad_parameter(
            "cursor",
            "This cursor belongs to another query: keep the collection, filters and sort "
            "of the page that returned it.",
        )
    try:
        return [_decoded(key, v) for key, v in zip(listing.sort, payload["p"], strict=True)]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise bad_parameter("cursor", "The cursor is malformed.") from None


def _decoded(key: SortKey, value: object) -> object:
    if key.field == "id":
        return uuid.UUID(value)
    if key.field in TIMESTAMPS:
        return datetime.fromisoformat(value)
    rank, typed = value
    expected = rank if rank in TYPED else MISSING
    if type(rank) is not int or rank not in range(MISSING + 1) or rank_of(typed) != expected:
        raise ValueError("not a data position")
    return rank, typed
